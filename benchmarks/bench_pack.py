"""Blob packing benchmark (issue 25): golf's brotli stream, the record's per-group lrzip pipeline and golf's
``grouped`` packer on the same quantized state; per group the order-0 entropy bound and each coder.

    python benchmarks/bench_pack.py --run RUN --data DIR          # (a) a trained checkpoint (GPTQ, real Hessians)
    python benchmarks/bench_pack.py --full-size [--vocab 8192]    # (b) the full-size 11L/512d MLPx4 shape,
                                                                  #     random init (SDClip scales, round to nearest)

The record's pipeline is run from its own source (benchmarks/record_oracle.py: ``_serialize_pergroup`` /
``_deserialize_pergroup``, which need the ``lrzip`` binary: ``apt-get install lrzip``); golf's tensor names
match its group keys.  Per-group columns (the group's int8 values, column-major as both pipelines store
them): ``H0`` = n·H(order-0 empirical entropy)/8, the bound an order-0 coder cannot beat; ``rans`` =
golf's interleaved rANS; ``brotli`` = brotli-11; ``br+L1`` = brotli-11 after the record's L1 row sort
(+ the uint16 permutation, brotli'd); ``ppmd`` = pyppmd order 6 (pip install pyppmd); ``lrzip`` =
``lrzip -z -L 9`` (ZPAQ) of the same bytes (the record's layout: sorted rows for embed, c_q, mlp.fc).
Weights trained on a GPU may differ (heavier tails, more structure); random weights are i.i.d.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

SORTED_BY_RECORD = {"embed", "attn.c_q", "mlp.fc"}


def _timed(fn, *a):
    t0 = time.perf_counter()
    out = fn(*a)
    return out, time.perf_counter() - t0


def trained_state(run: Path, data: Path, lqer: bool):
    """(arrays, qmeta, cfg) of a `golf train` checkpoint, quantized as `golf build` does (GPTQ, real Hessians)."""
    import copy

    from golf.builder import entry, quant
    from golf.data.shards import data_paths
    from golf.model.gpt import CONTROL_PATTERNS
    from golf.trainer.checkpoint import load_final_full

    cfg, state, rec = load_final_full(run)
    cfg = copy.deepcopy(cfg)
    cfg.quant.lqer_enabled = lqer
    model = entry.build_model(cfg, state, rec, "cpu")
    ds, _ = data_paths(data, cfg.model.vocab_size, environ={})
    arrays, qmeta, info, _ = quant.quantize_model(model, cfg, ds, CONTROL_PATTERNS)
    return arrays, qmeta, cfg


def full_size_state(vocab: int, method: str, layers: int = 0):
    """(arrays, qmeta, cfg) of the full-size shape (sp4096-record preset, ``vocab``), random init; every
    zero-init matrix drawn N(0, 0.02).  ``method`` rtn (fast) or gptq (random-token Hessians)."""
    import torch

    from golf.builder import quant
    from golf.model.gpt import CONTROL_PATTERNS, GPT
    from golf.presets import preset_config

    torch.manual_seed(0)
    cfg = preset_config("sp4096-record")
    cfg.model.vocab_size = vocab
    model = GPT(cfg.model).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 2 and p.abs().max() == 0:
                p.normal_(0.0, 0.02)
    sd = {k: v.detach().cpu() for k, v in model.state_dict().items()
          if not (layers and k.startswith("blocks.") and int(k.split(".")[1]) >= layers)}
    lin, emb = set(quant.linear_weights(model)), set(quant.embedding_weights(model))
    hess = {}
    if method == "gptq":
        want = [n for n, t in sd.items() if quant.classify(n, t, cfg.quant, CONTROL_PATTERNS, emb, lin)
                in ("attn", "mlp", "other", "embed")]
        g = torch.Generator().manual_seed(1)
        batches = [(torch.randint(0, vocab, (2, 1024), generator=g),) * 2 for _ in range(2)]
        hess = quant.collect_hessians(model, batches, want, "cpu")
    arrays, qmeta, _ = quant.quantize_state(sd, cfg.quant, CONTROL_PATTERNS, emb, lin, hess, method)
    return arrays, qmeta, cfg


def _lrzip(raw: bytes, tmp: Path) -> int:
    f = tmp / "g.bin"
    f.write_bytes(raw)
    subprocess.run(["lrzip", "-q", "-f", "-z", "-L", "9", "-o", str(f) + ".lrz", str(f)], check=True,
                   capture_output=True)
    n = (tmp / "g.bin.lrz").stat().st_size
    (tmp / "g.bin.lrz").unlink()
    return n


def group_rows(payload: bytes, with_l1: bool, tmp: Path, light: bool = False) -> list[dict]:
    """Per group of golf's packer: n, H0 bound and every candidate coder's bytes (``light``: H0 and rANS)."""
    import brotli

    from golf.builder import grouped
    index, base = grouped._payload_index(payload)
    try:
        import pyppmd
    except ImportError:
        pyppmd = None
    rows = []
    for name, _, transpose, tensors in grouped._group_plan(index):
        _, raw = grouped._group_bytes(payload, base, tensors, False, transpose)
        sym = np.frombuffer(raw, np.uint8)
        p = np.bincount(sym, minlength=256) / sym.size
        p = p[p > 0]
        r = {"group": name, "n": int(sym.size), "H0": float(-(p * np.log2(p)).sum() * sym.size / 8)}
        (coded, r["rans_enc_s"]) = _timed(grouped.rans_encode, sym)
        r["rans"] = len(coded)
        _, r["rans_dec_s"] = _timed(grouped.rans_decode, coded)
        if light:
            rows.append(r)
            print(f"  {name:<10} n={r['n']:>10,}  H0 {r['H0']:>11,.0f}  rans {r['rans']:>10,}", flush=True)
            continue
        r["brotli"] = len(brotli.compress(raw, quality=11, lgwin=24))
        if with_l1 and name != "lqer":
            perm, sraw = grouped._group_bytes(payload, base, tensors, True, transpose)
            r["br+L1"] = len(brotli.compress(sraw, quality=11, lgwin=24)) + len(brotli.compress(perm, quality=11))
        if pyppmd is not None:
            r["ppmd"] = len(pyppmd.compress(raw, max_order=6, mem_size=64 << 20))
        if shutil.which("lrzip"):
            lraw = grouped._group_bytes(payload, base, tensors, True, transpose)[1] \
                if with_l1 and name in SORTED_BY_RECORD else raw
            r["lrzip"] = _lrzip(lraw, tmp)
        rows.append(r)
        print(f"  {name:<10} n={r['n']:>10,}  H0 {r['H0']:>11,.0f}  rans {r['rans']:>10,}  brotli {r['brotli']:>10,}"
              f"  {r.get('br+L1', '-')!s:>10}  ppmd {r.get('ppmd', '-')!s:>10}  lrzip {r.get('lrzip', '-')!s:>10}",
              flush=True)
    return rows


def whole_blobs(arrays: dict, qmeta: dict, cfg, tmp: Path) -> dict:
    """Bytes and encode/decode seconds of golf brotli, golf grouped and the record's per-group pipeline."""
    from golf.builder import container, quant
    meta = quant.blob_meta(cfg, qmeta, False)
    out = {}
    for comp in ("brotli", "grouped"):
        blob, enc = _timed(container.pack, arrays, meta, comp)
        _, dec = _timed(container.unpack, blob)
        out[f"golf {comp}"] = {"bytes": len(blob), "encode_s": enc, "decode_s": dec}
        print(f"golf {comp}: {len(blob):,} B, encode {enc:.1f}s, decode {dec:.1f}s", flush=True)
    from record_oracle import frontier_script, load_frontier
    if shutil.which("lrzip") and frontier_script():
        rec = load_frontier()
        n_layers = cfg.model.num_layers
        blob, enc = _timed(rec._serialize_pergroup, arrays, qmeta, n_layers, str(tmp))
        (back, _), dec = _timed(rec._deserialize_pergroup, blob, n_layers, str(tmp))
        assert all(np.array_equal(back[k].numpy(), v.numpy()) for k, v in arrays.items())  # it round-trips
        out["record per-group (lrzip)"] = {"bytes": len(blob), "encode_s": enc, "decode_s": dec}
        print(f"record per-group: {len(blob):,} B, encode {enc:.1f}s, decode {dec:.1f}s", flush=True)
    else:
        print("record per-group: skipped (needs the lrzip binary and the frontier script)")
    return out


def table(label: str, blobs: dict, groups: list[dict]) -> str:
    lines = [f"\n### {label}\n", "| blob | bytes | vs golf brotli | encode s | decode s |", "|---|---:|---:|---:|---:|"]
    ref = blobs["golf brotli"]["bytes"]
    for k, v in blobs.items():
        lines.append(f"| {k} | {v['bytes']:,} | {v['bytes'] - ref:+,} | {v['encode_s']:.1f} | {v['decode_s']:.1f} |")
    cols = ["H0", "rans", "brotli", "br+L1", "ppmd", "lrzip"]
    lines += ["", "| group | values | " + " | ".join(cols) + " | rans/H0 | rans dec s |",
              "|---|---:|" + "---:|" * (len(cols) + 2)]
    tot = {c: 0.0 for c in cols}
    for r in groups:
        cells = []
        for c in cols:
            v = r.get(c)
            cells.append("-" if v is None else f"{v:,.0f}")
            if v is not None:
                tot[c] += v
        lines.append(f"| {r['group']} | {r['n']:,} | " + " | ".join(cells) + f" | {r['rans'] / r['H0']:.4f} | "
                     f"{r['rans_dec_s']:.2f} |")
    lines.append(f"| **all groups** | {sum(r['n'] for r in groups):,} | "
                 + " | ".join(f"{tot[c]:,.0f}" if tot[c] else "-" for c in cols)
                 + f" | {tot['rans'] / tot['H0']:.4f} | {sum(r['rans_dec_s'] for r in groups):.2f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", help="(a) a `golf train` run or checkpoint")
    ap.add_argument("--data", help="data dir of --run (calibration)")
    ap.add_argument("--lqer", action="store_true", help="(a): quantize with LQER on (its factors form a group)")
    ap.add_argument("--full-size", action="store_true", help="(b) the full-size shape, random init")
    ap.add_argument("--vocab", type=int, default=8192, help="(b): vocabulary (the frontier's 8192)")
    ap.add_argument("--layers", type=int, default=0, help="(b): only blocks 0..N-1 (+ embeddings); 0 = all 11")
    ap.add_argument("--method", default="rtn", choices=("rtn", "gptq"), help="(b): quantizer (rtn: fast)")
    ap.add_argument("--no-l1", action="store_true", help="skip the L1 row sort candidates (slow at full size)")
    ap.add_argument("--light", action="store_true",
                    help="per group only H0 and rANS (the whole-blob rows still run: for a loaded machine)")
    ap.add_argument("--json", help="write the numbers here")
    args = ap.parse_args()
    import torch
    torch.set_num_threads(1)
    if args.full_size:
        arrays, qmeta, cfg = full_size_state(args.vocab, args.method, args.layers)
        part = f", blocks 0-{args.layers - 1} only" if args.layers else ""
        label = (f"full-size 11L/512d MLPx4 vocab {args.vocab}{part}, random init, SDClip {args.method} "
                 f"({sum(v.numel() for v in arrays.values()):,} stored values)")
    elif args.run and args.data:
        arrays, qmeta, cfg = trained_state(Path(args.run), Path(args.data), args.lqer)
        label = (f"trained checkpoint {args.run} ({cfg.model.num_layers}L/{cfg.model.model_dim}d vocab "
                 f"{cfg.model.vocab_size}, GPTQ + SDClip{' + LQER' if args.lqer else ''})")
    else:
        ap.error("give --run RUN --data DIR, or --full-size")
    from golf.builder import container, quant
    tmp = Path(tempfile.mkdtemp(prefix="bench_pack_"))
    blobs = whole_blobs(arrays, qmeta, cfg, tmp)
    plain = container.pack(arrays, quant.blob_meta(cfg, qmeta, False), "none")
    payload = container.decompress(plain[container.HEADER.size:], "none")
    groups = group_rows(payload, not args.no_l1, tmp, args.light)
    print(table(label, blobs, groups))
    if args.json:
        Path(args.json).write_text(json.dumps({"label": label, "blobs": blobs, "groups": groups}, indent=2))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
