"""CPU throughput of golf's `frontier` model vs the 2026-04-27 record's own script, side by side.

Both models have the frontier features (11 layers, loop 3-5 x3 on, lanes from 8 with the record's
routing, XSA, SparseAttnGate, SmearGate) at small widths and hold the same weights (golf's name map).
One training forward+backward per repetition on the same batch, alternating the two models, one
thread, eager: the record's own CPU paths (its eager MLP and cross-entropy; its varlen attention via
the SDPA stand-in of tests/frontier_ref.py, segment by segment) against golf's (document mask).
Optimizer steps are not timed (the record's optimizers need CUDA streams).  Prints tok/s and the
ratio golf / record, dense rows and document-packed rows.

    python benchmarks/bench_frontier_cpu.py [--dim 128] [--tokens 2048] [--reps 5]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from frontier_ref import load_frontier_reference  # noqa: E402

from golf.builder.importstate import frontier_to_golf  # noqa: E402
from golf.config import apply_overrides  # noqa: E402
from golf.model.gpt import GPT  # noqa: E402
from golf.presets import preset_config  # noqa: E402


def build(dim: int, heads: int, vocab: int, seq: int):
    rec = load_frontier_reference()
    h = rec.Hyperparameters()
    for k, v in {"vocab_size": vocab, "model_dim": dim, "num_heads": heads, "num_kv_heads": heads // 2,
                 "train_seq_len": seq, "sparse_attn_gate_enabled": True, "sparse_attn_gate_scale": 0.5,
                 "smear_gate_enabled": True, "fused_ce_enabled": False}.items():
        setattr(h, k, v)
    r = rec.GPT(h).float().train()
    for b in r.blocks:
        b.mlp.use_fused = False  # the Triton kernel is CUDA-only
    with torch.no_grad():
        for p in r.parameters():
            p.add_(0.02 * torch.randn_like(p))
    cfg = preset_config("frontier")
    apply_overrides(cfg, {"model.vocab_size": vocab, "model.model_dim": dim, "model.num_heads": heads,
                          "model.num_kv_heads": heads // 2, "train.train_seq_len": seq})
    g = GPT(cfg.model).train()
    g.load_state_dict(frontier_to_golf(r.state_dict()))
    r.looping_active = True
    g.set_recurrence(True)
    return rec, r, g


def timed(fn, reps: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--seq", type=int, default=512, help="train_seq_len: longest attention segment when packed")
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rec, r, g = build(a.dim, a.heads, a.vocab, a.seq)
    x = torch.randint(2, a.vocab, (1, a.tokens + 1))
    x[0, torch.randint(0, a.tokens, (a.tokens // 400,))] = 1  # documents of ~400 tokens
    x[0, 0] = 1
    inp, tgt = x[:, :-1], x[:, 1:]
    bos = (inp[0] == 1).nonzero().flatten().tolist()
    cu, max_len = rec._build_cu_seqlens(bos, a.tokens, torch.device("cpu"), a.seq, 64)

    def step(model, *docs):
        model.zero_grad(set_to_none=True)
        model(inp, tgt, *docs).backward()

    rows = []
    for label, rec_args, golf_args in (("dense", (), ()), ("packed", (cu, max_len), ((cu, max_len),))):
        tr = timed(lambda: step(r, *rec_args), a.reps)
        tg = timed(lambda: step(g, *golf_args), a.reps)
        rows.append((label, a.tokens / tg, a.tokens / tr))
    import os
    load = os.getloadavg()[0]
    print(f"frontier features at dim {a.dim}, {a.heads} heads, vocab {a.vocab}, {a.tokens} tokens/step, "
          f"recurrence on, fwd+bwd, 1 thread (load {load:.1f})")
    for label, tg, tr in rows:
        print(f"{label:>6}: golf {tg:,.0f} tok/s, record {tr:,.0f} tok/s, ratio golf/record {tg / tr:.2f}")


if __name__ == "__main__":
    main()
