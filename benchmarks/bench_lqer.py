"""LQER (issue 25): post-quantization BPB tax and blob bytes with and without LQER, same weights, same Hessians.

    python benchmarks/bench_lqer.py --run RUN --data DIR [--val-max-tokens 65536] [--top-k 3] [--rank 4]

Quantizes the checkpoint as `golf build` does (GPTQ + SDClip), once without LQER and once per
``--top-k`` value with it, evaluates each model rebuilt from its blob bytes, and prints the tax
(post - pre val BPB), its change, and the blob bytes (brotli and grouped) with their change.
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--val-max-tokens", type=int, default=65536)
    ap.add_argument("--top-k", default="3", help="comma-separated LQER top-k values to compare")
    ap.add_argument("--rank", type=int, default=4)
    args = ap.parse_args()
    import torch
    torch.set_num_threads(1)

    from golf.builder import container, entry, quant
    from golf.builder.lqer import apply_lqer
    from golf.data.shards import data_paths
    from golf.model.gpt import CONTROL_PATTERNS
    from golf.trainer.checkpoint import load_final_full

    cfg, state, rec = load_final_full(args.run)
    ds, tok = data_paths(args.data, cfg.model.vocab_size, environ={})
    settings = entry.eval_settings(cfg, {"VAL_MAX_TOKENS": str(args.val_max_tokens)})
    settings["sliding"] = False
    val, luts = entry.load_eval_data(cfg, settings, ds, tok)
    model = entry.build_model(cfg, state, rec, "cpu")
    pre = entry.evaluate(model, val, luts, settings, "cpu")["roundtrip"].val_bpb
    cfg.quant.lqer_enabled = False
    arrays, qmeta, info, _ = quant.quantize_model(model, cfg, ds, CONTROL_PATTERNS)
    sd = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    rows = []
    for k in [0] + [int(x) for x in args.top_k.split(",")]:
        a, m, i = dict(arrays), copy.deepcopy(qmeta), copy.deepcopy(info)
        q = copy.deepcopy(cfg.quant)
        q.lqer_top_k, q.lqer_rank = k, args.rank
        top = apply_lqer(sd, a, m, i, q) if k else []
        meta = quant.blob_meta(cfg, m, rec)
        sizes = {c: len(container.pack(a, meta, c)) for c in ("brotli", "grouped")}
        arrs, meta2, _ = container.unpack(container.pack(a, meta, "grouped"))
        qmodel = entry.build_model(cfg, container.dequantize(arrs, meta2), rec, "cpu")
        post = entry.evaluate(qmodel, val, luts, settings, "cpu")["roundtrip"].val_bpb
        rows.append({"top_k": k, "tensors": top, "tax": post - pre, **sizes})
        print(f"top_k={k}: tax {post - pre:+.5f}  brotli {sizes['brotli']:,}  grouped {sizes['grouped']:,}  {top}",
              flush=True)
    base = rows[0]
    print(f"\npre-quant val_bpb {pre:.5f} on {len(val) - 1:,} tokens; rank {args.rank}, B int"
          f"{cfg.quant.lqer_factor_bits} groups of {cfg.quant.lqer_group}, A int{cfg.quant.lqer_a_bits}")
    print("| LQER top-k | tax (BPB) | tax change | brotli bytes (change) | grouped bytes (change) |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['top_k']} | {r['tax']:+.5f} | {r['tax'] - base['tax']:+.5f} | {r['brotli']:,} "
              f"({r['brotli'] - base['brotli']:+,}) | {r['grouped']:,} ({r['grouped'] - base['grouped']:+,}) |")


if __name__ == "__main__":
    main()
