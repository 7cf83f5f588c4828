"""Export throughput of `golf data build` (encode + shard writing) vs a plain single-process encode loop.

Usage: python benchmarks/bench_export.py [--mb 20] [--vocab 1024] [--workers N] [--corpus PATH]

Takes the first ~MB megabytes of text from the project corpus, trains ONE tokenizer on a
slice of it (not timed), then times
  (a) build_dataset(..., tokenizer_model=that model, workers=all cores): reading the JSONL,
      encoding in worker processes, writing shards (text MB per second of the encode+write phase);
  (b) a single-process loop `sp.encode(text)` one document at a time over the same texts;
and prints both rates and their ratio.
"""
from __future__ import annotations

import argparse
import json
import lzma
import os
import sys
import tempfile
import time
from pathlib import Path

import sentencepiece as spm

from golf.data.build import build_dataset
from golf.data.tokenizer import train_tokenizer

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "corpus" / "train_docs.jsonl.xz"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=20.0, help="MB of text to export")
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--repeats", type=int, default=2, help="timed runs of each; the best is reported")
    args = ap.parse_args()
    if not args.corpus.is_file():
        sys.exit(f"corpus not found: {args.corpus}")

    texts, nbytes = [], 0
    with lzma.open(args.corpus, "rt", encoding="utf-8") as f:
        for line in f:
            t = json.loads(line)["text"]
            texts.append(t)
            nbytes += len(t.encode("utf-8"))
            if nbytes >= args.mb * 1e6:
                break
    mb = nbytes / 1e6
    print(f"load average before: {os.getloadavg()[0]:.2f} (other processes share the cores: compare runs at low load)")
    print(f"text: {len(texts):,} docs, {mb:.1f} MB from {args.corpus.name}; cpu_count={os.cpu_count()}, "
          f"workers={args.workers}")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        docs = tmp / "docs.jsonl"
        with open(docs, "w", encoding="utf-8") as f:
            for t in texts:
                f.write(json.dumps({"text": t}) + "\n")
        model = tmp / "tok" / f"fineweb_{args.vocab}_bpe.model"
        t0 = time.perf_counter()
        train_tokenizer(texts[:2000], args.vocab, model, threads=args.workers)
        print(f"tokenizer: trained on {min(2000, len(texts))} docs in {time.perf_counter() - t0:.1f} s (not timed)")

        best_build = None
        for r in range(args.repeats):
            res = build_dataset([docs], args.vocab, tmp / f"out{r}", num_val_docs=max(1, len(texts) // 20),
                                workers=args.workers, progress=False, tokenizer_model=model)
            if best_build is None or res["encode_seconds"] < best_build["encode_seconds"]:
                best_build = res
        build_rate = best_build["text_bytes"] / 1e6 / best_build["encode_seconds"]

        sp = spm.SentencePieceProcessor(model_file=str(model))
        best_loop, ntok = None, 0
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            ntok = 0
            for t in texts:
                ntok += len(sp.encode(t)) + 1
            dt = time.perf_counter() - t0
            best_loop = dt if best_loop is None else min(best_loop, dt)
        loop_rate = mb / best_loop

    assert ntok == best_build["stats"]["tokens_total"], "build and loop disagree on the token count"
    print(f"build_dataset encode+write: {build_rate:8.2f} MB/s  ({best_build['encode_seconds']:.2f} s, "
          f"{best_build['stats']['tokens_total']:,} tokens, {best_build['stats']['files_total']} shards, "
          f"{args.workers} workers)")
    print(f"single-process sp.encode loop: {loop_rate:8.2f} MB/s  ({best_loop:.2f} s)")
    print(f"ratio build/loop: {build_rate / loop_rate:.2f}x")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
