"""Quantization benchmark: tax (post - pre val BPB) of GPTQ+SDClip vs round-to-nearest, bytes/param, build time.

    python benchmarks/bench_quant.py                       # CPU: sample data + a tiny model trained here
    python benchmarks/bench_quant.py --run RUN --data DIR  # an existing `golf train` run (e.g. seed on a GPU)
    python benchmarks/bench_quant.py --run RUN --data DIR --compare-clips   # issue 15: SDClip vs the record's
                                                                            # clip search vs naive RTN

Goal (issue 5): GPTQ+SDClip int6 tax <= 0.6 x RTN int6 tax.
--compare-clips (issue 15) collects the calibration Hessians once, then quantizes the same
trained weights with each method in this process, and reports post-pre BPB tax, compressed
blob bytes and quantization wall time (Hessians excluded) per method.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_data(tmp: Path, docs: int) -> Path:
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import read_sample_docs

    from golf.data.build import build_dataset

    f = tmp / "docs.jsonl"
    with open(f, "w", encoding="utf-8") as fh:
        for d in read_sample_docs(docs):
            fh.write(json.dumps({"text": d}) + "\n")
    build_dataset(docs=[f], vocab_size=1024, out_dir=tmp / "data", num_val_docs=40, shard_tokens=200_000,
                  workers=1, progress=False)
    return tmp / "data"


def train_tiny(data: Path, run: Path, steps: int, small_numel: int) -> None:
    from golf.config import GolfConfig, apply_overrides
    from golf.presets import TINY
    from golf.trainer.loop import RunOptions, train

    cfg = GolfConfig()
    apply_overrides(cfg, TINY)
    apply_overrides(cfg, {"train.iterations": steps, "train.warmdown_iters": max(1, steps // 4),
                          "train.val_loss_every": 0, "train.ema_start_step": steps // 3, "train.data_dir": str(data),
                          "train.run_dir": str(run), "train.recur_start_frac": 0.35,
                          "quant.small_tensor_numel": small_numel, "quant.calibration_batch_tokens": 8192,
                          "quant.calibration_batches": 4})
    train(cfg, RunOptions(progress=False, echo=False, device="cpu"))


CLIP_VARIANTS = (  # label, clip, method, control dtype
    ("SDClip + GPTQ (golf default)", "sdclip", "gptq", "fp32"),
    ("clip search + GPTQ (record)", "search", "gptq", "fp32"),
    ("clip search + GPTQ, fp16 control", "search", "gptq", "fp16"),
    ("SDClip + RTN", "sdclip", "rtn", "fp32"),
    ("naive RTN (row absmax)", "absmax", "rtn", "fp32"),
)


def naive_rtn(arrays: dict, qmeta: dict, info: dict, state: dict) -> dict:
    """Replace every quantized matrix by round-to-nearest at row-absmax scales (no clipping, no GPTQ)."""
    import torch

    from golf.builder import quant

    out = dict(arrays)
    for name, (kind, _) in qmeta.items():
        if kind != "q":
            continue
        w = state[name].float().reshape(state[name].shape[0], -1)
        bits = info[name]["bits"]
        s = (w.abs().amax(dim=1) / quant.qmax(bits)).clamp_min(1e-10).clamp(6e-8, 65504.0).half().float()
        out[name + ".q"] = quant.quantize_rtn(w, s, bits).reshape(state[name].shape)
        out[name + ".s"] = s.half()
        assert out[name + ".q"].dtype == torch.int8
    return out


def compare_clips(run: Path, data: Path, val_max_tokens: int, device: str | None) -> list[dict]:
    """Issue 15 deliverable 4: every variant on the same weights and the same Hessians, one process."""
    import copy

    from golf.builder import container, entry, quant
    from golf.data.shards import data_paths
    from golf.model.gpt import CONTROL_PATTERNS
    from golf.trainer.checkpoint import load_final_full

    cfg, state, recurrence = load_final_full(run)
    dev = entry.pick_device(device)
    ds_dir, tok = data_paths(data, cfg.model.vocab_size, environ={})
    settings = entry.eval_settings(cfg, {"VAL_MAX_TOKENS": str(val_max_tokens)})
    val, luts = entry.load_eval_data(cfg, settings, ds_dir, tok)
    model = entry.build_model(cfg, state, recurrence, dev)
    pre = entry.evaluate(model, val, luts, settings, dev, sliding=False)["roundtrip"].val_bpb
    sd = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    lin, emb = set(quant.linear_weights(model)), set(quant.embedding_weights(model))
    exact = {n for n, _ in model.named_buffers()}
    want = [n for n, t in sd.items()
            if quant.classify(n, t, cfg.quant, CONTROL_PATTERNS, emb, lin, exact) in ("attn", "mlp", "other", "embed")]
    t0 = time.perf_counter()
    hessians = quant.collect_hessians(model, quant.calibration_batches(cfg, ds_dir), want, dev)
    hess_s = time.perf_counter() - t0
    print(f"pre-quant val_bpb {pre:.5f}; Hessians for {len(hessians)} tensors in {hess_s:.1f}s")
    rows = []
    for label, clip, method, ctrl in CLIP_VARIANTS:
        q = copy.deepcopy(cfg.quant)
        q.clip, q.control_dtype = ("sdclip" if clip == "absmax" else clip), ctrl
        t0 = time.perf_counter()
        arrays, qmeta, info = quant.quantize_state(sd, q, CONTROL_PATTERNS, emb, lin, hessians, method, exact)
        if clip == "absmax":
            arrays = naive_rtn(arrays, qmeta, info, sd)
        quant_s = time.perf_counter() - t0
        blob = container.pack(arrays, quant.blob_meta(cfg, qmeta, recurrence), q.compressor, q.byte_shuffle)
        arrs2, meta2, _ = container.unpack(blob)
        qmodel = entry.build_model(cfg, container.dequantize(arrs2, meta2), recurrence, dev)
        post = entry.evaluate(qmodel, val, luts, settings, dev, sliding=False)["roundtrip"].val_bpb
        rows.append({"variant": label, "clip": clip, "method": method, "control_dtype": ctrl, "pre_bpb": pre,
                     "post_bpb": post, "tax": post - pre, "blob_bytes": len(blob), "quant_s": quant_s})
        print(f"{label:<34} tax {post - pre:+.5f}  blob {len(blob):>9,} B  quant {quant_s:6.1f}s", flush=True)
    print("\n| method | post-pre BPB tax | blob bytes | quantization s |\n|---|---:|---:|---:|")
    for x in rows:
        print(f"| {x['variant']} | {x['tax']:+.5f} | {x['blob_bytes']:,} | {x['quant_s']:.1f} |")
    print(f"pre-quant val_bpb {pre:.5f} on {len(val) - 1:,} validation tokens; params "
          f"{sum(t.numel() for t in sd.values()):,}; Hessians (shared) {hess_s:.1f}s")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", help="existing run dir (default: train a tiny model here)")
    ap.add_argument("--data", help="data dir for --run")
    ap.add_argument("--steps", type=int, default=200, help="training steps of the tiny model")
    ap.add_argument("--docs", type=int, default=300, help="sample docs for the tiny dataset")
    ap.add_argument("--bits", default="6,5,4", help="matrix bit widths to compare")
    ap.add_argument("--val-max-tokens", type=int, default=16384)
    ap.add_argument("--device", default=None)
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--compare-clips", action="store_true",
                    help="issue 15: SDClip vs the record's clip search vs naive RTN on --run (needs --run/--data)")
    args = ap.parse_args()

    from golf.builder.build import build

    if args.compare_clips:
        if not (args.run and args.data):
            ap.error("--compare-clips needs --run RUN --data DIR (a trained checkpoint)")
        rows = compare_clips(Path(args.run), Path(args.data), args.val_max_tokens, args.device)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=2))
        return

    tmp = Path(tempfile.mkdtemp(prefix="bench_quant_"))
    if args.run:
        run, data = Path(args.run), Path(args.data)
    else:
        t0 = time.perf_counter()
        data = make_data(tmp, args.docs)
        run = tmp / "run"
        train_tiny(data, run, args.steps, small_numel=1024)
        print(f"trained tiny model: {args.steps} steps in {time.perf_counter() - t0:.1f}s (data + train)")
    rows = []
    for bits in [int(b) for b in args.bits.split(",")]:
        for method in ("gptq", "rtn"):
            t0 = time.perf_counter()
            r = build(run, data, tmp / f"art_{method}_{bits}", bits={"matrix": bits}, method=method,
                      val_max_tokens=args.val_max_tokens, device=args.device, progress=False,
                      allow_oversize=True, log=lambda *a: None)
            dt = time.perf_counter() - t0
            mat = [c for k, c in r["classes"].items() if k in ("attn", "mlp")]
            mat_bytes = sum(c["compressed_bytes"] for c in mat)
            mat_params = sum(c["params"] for c in mat)
            rows.append({"bits": bits, "method": method, "pre_bpb": r["pre_quant"]["roundtrip"]["val_bpb"],
                         "post_bpb": r["post_quant"]["roundtrip"]["val_bpb"], "tax": r["quant_tax_bpb"],
                         "blob_bytes": r["blob_bytes"], "params": r["params"],
                         "bytes_per_param": r["blob_bytes"] / r["params"],
                         "matrix_bytes_per_param": mat_bytes / max(1, mat_params),
                         "code_bytes": r["code_bytes"], "build_s": dt,
                         "calib_quant_s": r["timings"]["calibrate_quantize_s"]})
    print(f"\n{'bits':>4} {'method':<6} {'pre bpb':>10} {'post bpb':>10} {'tax':>10} {'blob B':>9} {'B/param':>8} "
          f"{'mat B/p':>8} {'build s':>8} {'quant s':>8}")
    for x in rows:
        print(f"{x['bits']:>4} {x['method']:<6} {x['pre_bpb']:>10.5f} {x['post_bpb']:>10.5f} {x['tax']:>+10.5f} "
              f"{x['blob_bytes']:>9,} {x['bytes_per_param']:>8.3f} {x['matrix_bytes_per_param']:>8.3f} "
              f"{x['build_s']:>8.1f} {x['calib_quant_s']:>8.1f}")
    print()
    for bits in sorted({x["bits"] for x in rows}, reverse=True):
        g = next(x for x in rows if x["bits"] == bits and x["method"] == "gptq")
        n = next(x for x in rows if x["bits"] == bits and x["method"] == "rtn")
        ratio = g["tax"] / n["tax"] if n["tax"] > 0 else float("nan")
        verdict = "(goal <= 0.6)" if bits == 6 else ""
        print(f"int{bits}: GPTQ tax / RTN tax = {ratio:.3f} {verdict}")
    print(f"params {rows[0]['params']:,}; code bytes {rows[0]['code_bytes']:,}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
