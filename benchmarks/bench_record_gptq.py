"""Build time of the full-size ``sp4096-record`` model vs the record's own GPTQ, same weights and Hessians.

    OMP_NUM_THREADS=1 python benchmarks/bench_record_gptq.py [--tokens 4096] [--json out.json]

Random-init golf GPT of the ``sp4096-record`` preset (34,401,372 parameters).  In one process:
golf's Hessian collection (random token calibration batches: the timing does not depend on the
data), golf's quantization (SDClip + GPTQ, the default; ``--with-search`` adds ``--clip search``), golf's pack
(container + each ``--compressors`` entry: brotli, grouped), then the record's ``gptq_mixed_quantize_int6``
(loaded from ../shared/reference/ or $GOLF_RECORD_SCRIPT, as the parity test does) on the same state dict
and the same Hessians, and its serialize (torch.save, byte shuffle, brotli-11 via its ``_compress``).
Prints each time and the ratios golf (Hessians + quantize + pack) / record (GPTQ + serialize).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=4096, help="calibration tokens (batches of 2 x 1024)")
    ap.add_argument("--json", help="write the timings here")
    ap.add_argument("--layers", type=int, default=0,
                    help="time only blocks 0..N-1 (plus the embeddings) of the full-size model; 0 = all 11")
    ap.add_argument("--with-search", action="store_true", help="also time golf's --clip search (5x the GPTQ work)")
    ap.add_argument("--compressors", default="brotli,grouped",
                    help="golf blob compressors to time (comma-separated; the ratio is printed for each)")
    args = ap.parse_args()

    import copy
    import io

    import torch
    from test_parity_record import load_record_module, record_script

    from golf.builder import container, quant
    from golf.model.gpt import CONTROL_PATTERNS, GPT
    from golf.presets import preset_config

    script = record_script()
    if script is None:
        sys.exit("record script not found: set GOLF_RECORD_SCRIPT")
    rec = load_record_module(script)
    rec.log = lambda *a, **k: None  # its gptq_mixed_quantize_int6 logs through the training logger
    torch.manual_seed(0)
    cfg = preset_config("sp4096-record")
    model = GPT(cfg.model).eval()
    with torch.no_grad():  # random init leaves zero-init projections; give every matrix values
        for p in model.parameters():
            if p.ndim == 2 and p.abs().max() == 0:
                p.normal_(0.0, 0.02)
    n_params = sum(p.numel() for p in model.parameters())
    sd = {k: v.detach().cpu() for k, v in model.state_dict().items()
          if not (args.layers and k.startswith("blocks.") and int(k.split(".")[1]) >= args.layers)}
    lin, emb = set(quant.linear_weights(model)), set(quant.embedding_weights(model))
    want = [n for n, t in sd.items()
            if quant.classify(n, t, cfg.quant, CONTROL_PATTERNS, emb, lin) in ("attn", "mlp", "other", "embed")]
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randint(0, 4096, (2, 1024), generator=g),) * 2 for _ in range(max(1, args.tokens // 2048))]
    times = {}
    t0 = time.perf_counter()
    hessians = quant.collect_hessians(model, batches, want, "cpu")
    times["golf_hessians_s"] = time.perf_counter() - t0
    print(f"sp4096-record: {n_params:,} params ({len(sd)} tensors timed); "
          f"Hessians ({len(hessians)} tensors) {times['golf_hessians_s']:.1f}s",
          flush=True)
    clips = ("sdclip", "search") if args.with_search else ("sdclip",)
    comps = args.compressors.split(",")
    for clip in clips:
        q = copy.deepcopy(cfg.quant)
        q.clip = clip
        t0 = time.perf_counter()
        arrays, qmeta, _ = quant.quantize_state(sd, q, CONTROL_PATTERNS, emb, lin, hessians, "gptq")
        times[f"golf_{clip}_quant_s"] = time.perf_counter() - t0
        for comp in comps:
            t0 = time.perf_counter()
            blob = container.pack(arrays, quant.blob_meta(cfg, qmeta, True), comp, q.byte_shuffle)
            times[f"golf_{clip}_{comp}_pack_s"] = time.perf_counter() - t0
            times[f"golf_{clip}_{comp}_blob_bytes"] = len(blob)
            print(f"golf {clip}: quantize {times[f'golf_{clip}_quant_s']:.1f}s, pack {comp} "
                  f"{times[f'golf_{clip}_{comp}_pack_s']:.1f}s, {len(blob):,} B", flush=True)
    rec_h = {k: v for k, v in hessians.items() if ".attn." in k or ".mlp." in k}  # the record's GPTQ set
    t0 = time.perf_counter()
    quant_result, quant_meta = rec.gptq_mixed_quantize_int6(sd, {"mlp", "attn"}, rec_h)
    times["record_gptq_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()  # the record's serialize after GPTQ: torch.save, byte shuffle, brotli-11
    buf = io.BytesIO()
    torch.save({"w": quant_result, "m": quant_meta}, buf)
    times["record_blob_bytes"] = len(rec._compress(buf.getvalue(), "brotli"))
    times["record_serialize_s"] = time.perf_counter() - t0
    record_total = times["record_gptq_s"] + times["record_serialize_s"]
    print(f"record gptq_mixed_quantize_int6: {times['record_gptq_s']:.1f}s, serialize "
          f"{times['record_serialize_s']:.1f}s, {times['record_blob_bytes']:,} B", flush=True)
    for clip in clips:
        times[f"ratio_{clip}_quant_vs_record"] = times[f"golf_{clip}_quant_s"] / times["record_gptq_s"]
        for comp in comps:
            total = times["golf_hessians_s"] + times[f"golf_{clip}_quant_s"] + times[f"golf_{clip}_{comp}_pack_s"]
            times[f"ratio_{clip}_{comp}_build_vs_record"] = total / record_total
            print(f"golf {clip} + {comp} (Hessians + GPTQ + pack) / record (GPTQ + serialize) = "
                  f"{times[f'ratio_{clip}_{comp}_build_vs_record']:.3f}")
        print(f"golf {clip} quantization alone / record GPTQ = {times[f'ratio_{clip}_quant_vs_record']:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(times, indent=2))


if __name__ == "__main__":
    main()
