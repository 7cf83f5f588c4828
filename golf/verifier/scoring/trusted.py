"""Trusted re-evaluation of a golf artifact: ``python -m golf.verifier.scoring.trusted ...``.

Runs in its own process, started by the verifier with resource limits.  It executes none of
the artifact's code: the blob is decoded with golf's container reader (no unpickling), the
model is golf's own ``GPT`` rebuilt from the blob's embedded config, and every window of the
verifier's plan (:func:`golf.verifier.scoring.streaming.window_plan`) over the whole validation
stream is scored with it.  Writes ``sliding.f32`` / ``plain.f32`` (float32 NLL per target, in
target order) and ``summary.json`` into ``--out``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def score_plan(model, stream: np.ndarray, plan, batch: int, device, dtype):
    """Every window of ``plan`` through ``model.per_token_nll``; returns the filled :class:`Scores`."""
    import torch

    from golf.verifier.scoring.streaming import Scores
    scores = Scores(plan)
    val = torch.from_numpy(np.ascontiguousarray(stream, dtype=np.int64)).to(device)
    for n in np.unique(plan.length):
        idx = np.flatnonzero(plan.length == n)
        pos = torch.arange(int(n), device=device)
        for i in range(0, len(idx), batch):
            part = idx[i:i + batch]
            starts = torch.from_numpy(plan.start[part]).to(device)[:, None] + pos
            with torch.no_grad(), torch.autocast(device_type=val.device.type, dtype=dtype or torch.bfloat16,
                                                 enabled=dtype is not None):
                nll = model.per_token_nll(val[starts], val[starts + 1]).float().cpu().numpy()
            for w, row in zip(part, nll):
                scores.put(int(w), row[int(plan.first[w]):])
    return scores


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m golf.verifier.scoring.trusted", description=__doc__.splitlines()[0])
    ap.add_argument("--blob", required=True)
    ap.add_argument("--dataset", required=True, help="dataset dir with fineweb_val_*.bin")
    ap.add_argument("--seq-len", type=int, required=True)
    ap.add_argument("--stride", type=int, required=True)
    ap.add_argument("--max-tokens", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    from golf.builder import entry
    from golf.builder.container import ContainerError, load_blob
    from golf.config import GolfConfig
    from golf.data.loader import load_val_tokens
    from golf.device import autocast_dtype
    from golf.verifier.scoring.streaming import window_plan
    try:
        state, meta, _ = load_blob(a.blob)
        cfg = GolfConfig.from_dict(meta["config"])
        device = entry.pick_device(a.device)
        model = entry.build_model(cfg, state, meta.get("recurrence_active", False), device)
    except (ContainerError, KeyError, TypeError, ValueError, RuntimeError) as e:
        print(f"trusted: cannot rebuild the model from {a.blob}: {type(e).__name__}: {e}", file=sys.stderr)
        return 3
    stream = load_val_tokens(a.dataset, 0, cfg.model.vocab_size, a.max_tokens)
    plan = window_plan(len(stream) - 1, a.seq_len, a.stride)
    scores = score_plan(model, stream, plan, max(1, cfg.eval.eval_batch_seqs), device, autocast_dtype(device))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    scores.sliding.astype("<f4").tofile(out / "sliding.f32")
    scores.plain.astype("<f4").tofile(out / "plain.f32")
    (out / "summary.json").write_text(json.dumps({
        "windows": len(plan), "targets": plan.targets, "forward_tokens": plan.forward_tokens(),
        "device": str(device), "dtype": str(autocast_dtype(device)), "wall_s": time.perf_counter() - t0,
        "pid": os.getpid()}), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
