"""`golf data build` on real text: tokenizer options, shard contents, manifest, failure safety, CLI."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm
from click.testing import CliRunner
from conftest import read_sample_docs

from golf.cli import main
from golf.data.build import DatasetError, build_dataset
from golf.data.shards import list_shards, read_shard, read_shard_header

SPACE = "\u2581"


def _docs_of(tokens: np.ndarray) -> list[np.ndarray]:
    starts = np.flatnonzero(tokens == 1)
    return [tokens[s + 1:e] for s, e in zip(starts, list(starts[1:]) + [len(tokens)])]


def _split(dataset_dir, split, vocab):
    return np.concatenate([np.asarray(read_shard(f, vocab), dtype=np.int64) for f in list_shards(dataset_dir, split)])


def _write_jsonl(path, docs):
    with open(path, "w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps({"text": d}) + "\n")
    return path


def test_tokenizer_has_official_options(tiny_data):
    sp = spm.SentencePieceProcessor(model_file=str(tiny_data["tokenizer"]))
    assert sp.get_piece_size() == 1024
    assert (sp.pad_id(), sp.bos_id(), sp.eos_id(), sp.unk_id()) == (0, 1, 2, 3)
    assert sp.piece_to_id("<0x00>") == 4 and sp.piece_to_id("<0xFF>") == 259  # byte fallback pieces
    assert sp.encode("2024", out_type=str) == ["2", "0", "2", "4"]  # split_digits
    assert not sp.encode("hello world", out_type=str)[0].startswith(SPACE)  # no dummy prefix
    assert sp.piece_to_id(SPACE) != sp.unk_id()  # standalone space piece (SPEC §8 pitfall 4a)
    assert sp.decode(sp.encode("\u00e9\u4e16\U0001F600")) == "\u00e9\u4e16\U0001F600"  # byte fallback round trip
    assert tiny_data["tokenizer"].with_suffix(".vocab").read_text(encoding="utf-8").count("\n") == 1024


def test_shards_hold_every_doc_once_as_bos_plus_tokens(tiny_data):
    d, V = tiny_data["dataset_dir"], tiny_data["vocab_size"]
    docs = read_sample_docs(300)
    sp = spm.SentencePieceProcessor(model_file=str(tiny_data["tokenizer"]))
    val, train = _split(d, "val", V), _split(d, "train", V)
    assert val[0] == 1 and train[0] == 1  # each split starts a document: no shard mixes splits
    assert int((val == 1).sum()) == 40 and int((train == 1).sum()) == 260
    assert not (val == 2).any() and not (train == 2).any()  # no EOS
    got = _docs_of(val) + _docs_of(train)
    assert len(got) == len(docs)
    for i in list(range(0, 300, 7)) + [39, 40, 299]:
        expected = sp.normalize(docs[i]).replace(SPACE, " ")
        assert sp.decode(got[i].tolist()) == expected, f"document {i} does not decode to its normalized text"
    # shard sizes: all full except the last of each split
    for split in ("val", "train"):
        sizes = [read_shard_header(f) for f in list_shards(d, split)]
        assert all(s == 200_000 for s in sizes[:-1]) and 0 < sizes[-1] <= 200_000


def test_manifest_matches_files(tiny_data):
    root, d = tiny_data["data_dir"], tiny_data["dataset_dir"]
    m = json.loads((root / "manifest.json").read_text())
    for key in ("version", "num_docs", "num_val_docs", "shuffle_seed", "shard_size", "append_eos", "docs_jsonl",
                "docs_meta", "tokenizer_specs", "tokenizers", "datasets"):
        assert key in m, key
    assert (m["version"], m["num_docs"], m["num_val_docs"], m["shard_size"], m["append_eos"]) == \
        ("10B", 300, 40, 200_000, False)
    (tok,) = m["tokenizers"]
    (ds,) = m["datasets"]
    assert tok["name"] == ds["tokenizer_name"] == "sp_bpe_1024"
    assert (tok["vocab_size"], tok["bos_id"], tok["eos_id"], tok["recommended_bigram_vocab_size"]) == (1024, 1, 2, 5120)
    assert (root / tok["model_path"]) == tiny_data["tokenizer"] and (root / tok["vocab_path"]).is_file()
    assert not Path(tok["model_path"]).is_absolute() and not Path(ds["path"]).is_absolute()
    assert ds["name"] == "fineweb10B_sp1024" and (root / ds["path"]) == d
    assert sorted(root.glob(ds["train_glob"])) == list_shards(d, "train")
    assert sorted(root.glob(ds["val_glob"])) == list_shards(d, "val")
    st = ds["stats"]
    n_val = sum(read_shard_header(f) for f in list_shards(d, "val"))
    n_train = sum(read_shard_header(f) for f in list_shards(d, "train"))
    assert (st["tokens_val"], st["tokens_train"], st["tokens_total"]) == (n_val, n_train, n_val + n_train)
    assert (st["files_val"], st["files_train"]) == (len(list_shards(d, "val")), len(list_shards(d, "train")))
    assert st["files_total"] == st["files_val"] + st["files_train"]
    assert (st["docs_val"], st["docs_train"], st["docs_total"]) == (40, 260, 300)
    assert tiny_data["result"]["stats"] == st
    specs = json.loads((root / m["tokenizer_specs"]).read_text())
    assert specs["tokenizers"][0]["vocab_size"] == 1024
    assert specs["tokenizers"][0]["trainer_options"]["normalization_rule_name"] == "nmt_nfkc"
    assert not list(root.rglob(".*partial*"))


def test_reused_model_gives_identical_shards_with_multiprocessing(tiny_data, tmp_path):
    docs = _write_jsonl(tmp_path / "docs.jsonl", read_sample_docs(300))
    out = tmp_path / "again"
    res = build_dataset([docs], 1024, out, num_val_docs=40, shard_tokens=200_000, workers=2, progress=False,
                        tokenizer_model=tiny_data["tokenizer"], sp_batch_size=16)
    assert res["workers"] == 2
    new, old = out / "datasets" / "fineweb10B_sp1024", tiny_data["dataset_dir"]
    assert [p.name for p in sorted(new.iterdir())] == [p.name for p in sorted(old.iterdir())]
    for p in sorted(old.iterdir()):
        assert (new / p.name).read_bytes() == p.read_bytes(), p.name
    assert (out / "tokenizers" / "fineweb_1024_bpe.model").read_bytes() == tiny_data["tokenizer"].read_bytes()


def test_compressed_sample_input_and_env_knobs(sample_path, tmp_path, monkeypatch):
    monkeypatch.setenv("MATCHED_FINEWEB_TOKENIZER_THREADS", "1")
    monkeypatch.setenv("MATCHED_FINEWEB_SP_BATCH_SIZE", "50")
    res = build_dataset([sample_path], 512, tmp_path, num_val_docs=100, shard_tokens=1_000_000, progress=False,
                        tokenizer_train_docs=150)
    assert res["workers"] == 1 and res["sp_batch_size"] == 50
    assert res["stats"]["docs_total"] == 802 and res["stats"]["docs_val"] == 100
    d = Path(res["dataset_dir"])
    assert int((_split(d, "train", 512) == 1).sum()) == 702
    assert res["text_bytes"] == sum(len(t.encode()) for t in read_sample_docs())
    spec = json.loads((tmp_path / "tokenizer_config.export.json").read_text())["tokenizers"][0]
    assert spec["tokenizer_train_docs"] == 150


def test_plain_text_files_are_one_document_each(tiny_data, tmp_path):
    docs = read_sample_docs(6)
    files = []
    for i, text in enumerate(docs):
        p = tmp_path / f"doc{i}.txt"
        p.write_text(text, encoding="utf-8")
        files.append(p)
    res = build_dataset(files, 1024, tmp_path / "out", num_val_docs=2, progress=False, workers=1,
                        tokenizer_model=tiny_data["tokenizer"])
    d = Path(res["dataset_dir"])
    sp = spm.SentencePieceProcessor(model_file=str(tiny_data["tokenizer"]))
    got = _docs_of(_split(d, "val", 1024)) + _docs_of(_split(d, "train", 1024))
    assert len(got) == 6
    assert [sp.decode(g.tolist()) for g in got] == [sp.normalize(t).replace(SPACE, " ") for t in docs]


def test_long_documents_need_max_sentence_length(tmp_path):
    files = []
    for i, text in enumerate(read_sample_docs(60)):
        if len(text.encode()) > 4192:
            p = tmp_path / f"d{i}.txt"
            p.write_text(text, encoding="utf-8")
            files.append(p)
    files = files[:12]
    with pytest.raises(DatasetError, match="max_sentence_length"):
        build_dataset(files, 400, tmp_path / "a", num_val_docs=2, progress=False, workers=1)
    res = build_dataset(files, 400, tmp_path / "b", num_val_docs=2, progress=False, workers=1,
                        trainer_overrides={"max_sentence_length": 200_000})
    assert res["stats"]["docs_total"] == 12 and not res["warnings"]


def test_failed_build_leaves_no_shards_and_keeps_old_dataset(tiny_data, tmp_path):
    docs = read_sample_docs(300)
    bad = tmp_path / "bad.jsonl"
    _write_jsonl(bad, docs)
    with open(bad, "a", encoding="utf-8") as f:
        f.write('{"text": "unterminated\n')
    out = tmp_path / "out"
    with pytest.raises(DatasetError, match=r"bad\.jsonl:301: bad JSON line"):
        build_dataset([bad], 1024, out, num_val_docs=40, shard_tokens=50_000, progress=False, workers=1,
                      tokenizer_model=tiny_data["tokenizer"])
    assert not (out / "datasets" / "fineweb10B_sp1024").exists()
    assert not list(out.rglob("*.bin")) and not (out / "manifest.json").exists()
    assert not (out / "tokenizers" / "fineweb_1024_bpe.model").exists()
    # an existing dataset survives a failed rebuild untouched (same for the tokenizer)
    good = _write_jsonl(tmp_path / "good.jsonl", docs[:100])
    build_dataset([good], 1024, out, num_val_docs=10, progress=False, workers=1, tokenizer_model=tiny_data["tokenizer"])
    before = {p.name: p.read_bytes() for p in (out / "datasets" / "fineweb10B_sp1024").iterdir()}
    with pytest.raises(DatasetError):
        build_dataset([bad], 1024, out, num_val_docs=40, shard_tokens=50_000, progress=False, workers=2)
    after = {p.name: p.read_bytes() for p in (out / "datasets" / "fineweb10B_sp1024").iterdir()}
    assert after == before
    assert (out / "tokenizers" / "fineweb_1024_bpe.model").read_bytes() == tiny_data["tokenizer"].read_bytes()
    assert not list((out / "datasets").glob(".*partial*"))
    with pytest.raises(DatasetError, match="already exists"):
        build_dataset([good], 1024, out, num_val_docs=10, progress=False, workers=1, overwrite=False,
                      tokenizer_model=tiny_data["tokenizer"])


def test_bad_inputs(tiny_data, tmp_path):
    good = _write_jsonl(tmp_path / "d.jsonl", read_sample_docs(20))
    with pytest.raises(DatasetError, match="too big"):
        build_dataset([good], 70_000, tmp_path / "o", num_val_docs=2, progress=False)
    with pytest.raises(DatasetError, match="has 1024 pieces but the vocab size asked for is 2048"):
        build_dataset([good], 2048, tmp_path / "o", num_val_docs=2, progress=False,
                      tokenizer_model=tiny_data["tokenizer"])
    with pytest.raises(DatasetError, match="nothing would be left for training"):
        build_dataset([good], 1024, tmp_path / "o", num_val_docs=20, progress=False, workers=1,
                      tokenizer_model=tiny_data["tokenizer"])
    with pytest.raises(DatasetError, match="not found"):
        build_dataset([tmp_path / "nope.jsonl"], 1024, tmp_path / "o", num_val_docs=2, progress=False)
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(DatasetError, match="unknown document file type"):
        build_dataset([tmp_path / "x.csv"], 1024, tmp_path / "o", num_val_docs=2, progress=False)
    (tmp_path / "notext.jsonl").write_text('{"body": "x"}\n')
    with pytest.raises(DatasetError, match=r"notext\.jsonl:1: expected a JSON object with a string field 'text'"):
        build_dataset([tmp_path / "notext.jsonl"], 1024, tmp_path / "o", num_val_docs=1, progress=False, workers=1,
                      tokenizer_model=tiny_data["tokenizer"])


def test_tokenizer_without_space_piece_is_refused(tmp_path):
    # text without any whitespace trains a model with no standalone "▁" piece
    rng = np.random.default_rng(0)
    docs = ["".join(rng.choice(list("abcdefgh"), size=2000)) for _ in range(30)]
    p = _write_jsonl(tmp_path / "nospace.jsonl", docs)
    with pytest.raises(DatasetError, match="no standalone '\u2581' piece"):
        build_dataset([p], 300, tmp_path / "o", num_val_docs=2, progress=False, workers=1)


def test_cli_build_help_errors_and_summary(tiny_data, tmp_path):
    r = CliRunner()
    for args in (["data", "--help"], ["data", "build", "--help"]):
        res = r.invoke(main, args)
        assert res.exit_code == 0
    text = r.invoke(main, ["data", "build", "--help"]).output
    assert "ONE document" in text and "--num-val-docs" in text and "--tokenizer-train-docs" in text
    docs = _write_jsonl(tmp_path / "d.jsonl", read_sample_docs(60))
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{oops}\n')
    cases = [
        (["--docs", str(tmp_path / "missing.jsonl"), "--vocab-size", "1024"], "missing.jsonl: document file not found"),
        (["--docs", str(tmp_path / "bad.jsonl"), "--vocab-size", "1024", "--num-val-docs", "1", "--tokenizer",
          str(tiny_data["tokenizer"])], "bad.jsonl:2: bad JSON line"),
        (["--docs", str(docs), "--vocab-size", "100000"], "too big"),
        (["--docs", str(docs), "--vocab-size", "1024", "--sp-option", "novalue"], "KEY=VALUE"),
    ]
    for args, needle in cases:
        res = r.invoke(main, ["data", "build", "--out", str(tmp_path / "o"), "--no-progress"] + args)
        assert res.exit_code != 0, args
        assert needle in res.output, res.output
        assert "Traceback" not in res.output and res.exception is None or isinstance(res.exception, SystemExit)
    res = r.invoke(main, ["data", "build", "--docs", str(docs), "--vocab-size", "1024", "--num-val-docs", "10",
                          "--out", str(tmp_path / "o"), "--tokenizer", str(tiny_data["tokenizer"]), "--workers", "1",
                          "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "val:   10 docs" in res.output and "train: 50 docs" in res.output
    assert "fineweb10B_sp1024" in res.output and "manifest.json" in res.output
    res = r.invoke(main, ["data", "build", "--docs", str(docs), "--vocab-size", "1024", "--num-val-docs", "10",
                          "--out", str(tmp_path / "o"), "--tokenizer", str(tiny_data["tokenizer"]), "--no-progress"])
    assert res.exit_code != 0 and "--force" in res.output


def test_killed_build_leaves_nothing_that_looks_complete(tiny_data, tmp_path):
    """SIGKILL a real `golf data build` while it is writing shards (input is a pipe, so the build is
    provably mid-way when killed); then a new build cleans up the dead build's staging folder."""
    import os
    import signal
    import subprocess
    import sys
    import time

    fifo = tmp_path / "docs.jsonl"
    os.mkfifo(fifo)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "golf", "data", "build", "--docs", str(fifo), "--vocab-size", "1024",
           "--num-val-docs", "5", "--shard-tokens", "2000", "--sp-batch-size", "2", "--workers", "1",
           "--tokenizer", str(tiny_data["tokenizer"]), "--out", str(out), "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        with open(fifo, "w", encoding="utf-8") as w:
            for d in read_sample_docs(40):
                w.write(json.dumps({"text": d}) + "\n")
            w.flush()
            staged = []
            deadline = time.monotonic() + 60
            while len(staged) < 3 and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.05)
                staged = list((out / "datasets").glob(".fineweb10B_sp1024.partial-*/fineweb_train_*.bin"))
            assert len(staged) >= 3, "the build never started writing shards"
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (out / "datasets" / "fineweb10B_sp1024").exists()
    assert not (out / "manifest.json").exists()
    assert not list(out.glob("datasets/fineweb10B_*/*.bin"))
    for p in staged:  # whatever was written is either a complete shard or not there (temp + rename)
        if p.exists():
            read_shard_header(p)
    good = _write_jsonl(tmp_path / "good.jsonl", read_sample_docs(20))
    build_dataset([good], 1024, out, num_val_docs=5, progress=False, workers=1, tokenizer_model=tiny_data["tokenizer"])
    assert not list((out / "datasets").glob(".*partial*"))
    assert [p.name for p in (out / "datasets").iterdir() if not p.name.startswith(".")] == ["fineweb10B_sp1024"]
    with pytest.raises(DatasetError, match="pipe"):
        build_dataset([fifo], 1024, tmp_path / "o2", num_val_docs=5, progress=False)
