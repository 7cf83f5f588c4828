"""Quantization benchmark: tax (post - pre val BPB) of GPTQ+SDClip vs round-to-nearest, bytes/param, build time.

    python benchmarks/bench_quant.py                       # CPU: sample data + a tiny model trained here
    python benchmarks/bench_quant.py --run RUN --data DIR  # an existing `golf train` run (e.g. seed on a GPU)

Goal (issue 5): GPTQ+SDClip int6 tax <= 0.6 x RTN int6 tax.
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
    args = ap.parse_args()

    from golf.builder.build import build

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
