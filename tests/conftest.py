"""Shared fixtures: a real SentencePiece tokenizer and real shards from the embedded sample."""
from __future__ import annotations

import json
import lzma
from pathlib import Path

import pytest

SAMPLE = Path(__file__).resolve().parents[1] / "golf" / "data" / "sample" / "sample_docs.jsonl.xz"


def read_sample_docs(limit: int | None = None) -> list[str]:
    docs = []
    with lzma.open(SAMPLE, "rt", encoding="utf-8") as f:
        for line in f:
            docs.append(json.loads(line)["text"])
            if limit and len(docs) >= limit:
                break
    return docs


@pytest.fixture(scope="session")
def sample_path() -> Path:
    return SAMPLE


@pytest.fixture(scope="session")
def sample_docs() -> list[str]:
    return read_sample_docs()


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> dict:
    """A real sp1024 dataset built with `golf data build` from the first 300 sample docs (40 val)."""
    from golf.data.build import build_dataset

    out = tmp_path_factory.mktemp("golfdata")
    docs_file = out / "docs.jsonl"
    with open(docs_file, "w", encoding="utf-8") as f:
        for d in read_sample_docs(300):
            f.write(json.dumps({"text": d}) + "\n")
    result = build_dataset(docs=[docs_file], vocab_size=1024, out_dir=out / "data", num_val_docs=40,
                           shard_tokens=200_000, workers=1, progress=False)
    data_dir = out / "data"
    return {
        "data_dir": data_dir,
        "dataset_dir": data_dir / "datasets" / "fineweb10B_sp1024",
        "tokenizer": data_dir / "tokenizers" / "fineweb_1024_bpe.model",
        "vocab_size": 1024,
        "result": result,
    }


def _one_thread():
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test (the CI box is shared; oversubscribed threads make CPU steps crawl)."""
    yield from _one_thread()


@pytest.fixture(scope="module")
def one_torch_thread_module():
    """:func:`one_torch_thread` for a whole module, its module-scoped fixtures included."""
    yield from _one_thread()
