"""CaseOps datasets end to end on real text: `golf data build --caseops`, the byte sidecar, the one byte
source of the metric, names from the manifest, and the train/validation overlap checks.

The record's ``prepare_caseops_data.py`` (MIT, ``../shared/reference/frontier_1.0611/``) is run as the
oracle on the same documents; its shards and sidecar must come out byte-identical to golf's.
"""
from __future__ import annotations

import json
import runpy
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import read_sample_docs
from test_caseops import CASEOPS_TOKENIZER, RECORD

from golf.cli import main as golf_cli
from golf.data.build import DatasetError, build_dataset
from golf.data.caseops import OPERATORS
from golf.data.loader import load_val_bytes, load_val_tokens
from golf.data.shards import CASEOPS_SUFFIX, ShardError, data_paths, read_shard, read_shard_header, write_shard
from golf.metric import build_byte_luts, byte_basis, byte_count, byte_source

DOCS, VAL_DOCS = 300, 50
NAME = "fineweb10B_sp8192_lossless_caps_caseops_v1_reserved"


def _write_docs(path: Path, docs: list[str]) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps({"text": d}) + "\n")
    return path


@pytest.fixture(scope="module")
def caseops_data(tmp_path_factory):
    """`golf data build --caseops` with the record's tokenizer on the first 300 sample documents (50 val)."""
    if not CASEOPS_TOKENIZER.is_file():
        pytest.skip(f"the record's CaseOps tokenizer is not at {CASEOPS_TOKENIZER}")
    tmp = tmp_path_factory.mktemp("caseops")
    docs = read_sample_docs(DOCS)
    src = _write_docs(tmp / "docs.jsonl", docs)
    out = tmp / "data"
    res = CliRunner().invoke(golf_cli, ["data", "build", "--docs", str(src), "--vocab-size", "8192", "--caseops",
                                        "--tokenizer", str(CASEOPS_TOKENIZER), "--num-val-docs", str(VAL_DOCS),
                                        "--out", str(out), "--workers", "1", "--no-progress"])
    assert res.exit_code == 0, res.output
    return SimpleNamespace(root=out, dataset=out / "datasets" / NAME, docs=docs, src=src, tmp=tmp, output=res.output)


def _oracle_prep(src: Path, out: Path, val_docs: int, tokenizer: Path = CASEOPS_TOKENIZER) -> Path:
    """Run the record's prepare_caseops_data.py.  sentencepiece 0.2.3 dropped ``encode_as_immutable_proto``,
    which it calls; the stand-in gives it the same ids and surfaces (from protobuf if installed, else from
    the offset mapping)."""
    import sentencepiece as spm

    script = RECORD / "prepare_caseops_data.py"
    if not script.is_file():
        pytest.skip(f"the record's prepare_caseops_data.py is not at {script}")

    def immutable_proto(self, text):
        try:
            return self.encode(text, out_type="proto")
        except ImportError:
            m = self.encode(text, out_type="offset_mapping")
            return SimpleNamespace(pieces=[SimpleNamespace(id=i, surface=text[a:b])
                                           for i, (a, b) in zip(m["ids"], m["offsets"])])

    argv = sys.argv
    patched = not hasattr(spm.SentencePieceProcessor, "encode_as_immutable_proto")
    if patched:
        spm.SentencePieceProcessor.encode_as_immutable_proto = immutable_proto
    sys.argv = ["prepare_caseops_data.py", "--docs", str(src), "--out", str(out), "--sp", str(tokenizer),
                "--val-docs", str(val_docs)]
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = argv
        if patched:
            del spm.SentencePieceProcessor.encode_as_immutable_proto
    return out / "datasets" / NAME


def test_shards_and_sidecar_are_byte_identical_to_the_oracle(caseops_data):
    oracle = _oracle_prep(caseops_data.src, caseops_data.tmp / "oracle", VAL_DOCS)
    names = sorted(p.name for p in oracle.iterdir())
    assert names == ["fineweb_train_000000.bin", "fineweb_val_000000.bin", "fineweb_val_bytes_000000.bin"]
    assert sorted(p.name for p in caseops_data.dataset.iterdir()) == names
    for n in names:
        assert (caseops_data.dataset / n).read_bytes() == (oracle / n).read_bytes(), n


def test_the_sidecar_sums_to_each_documents_utf8_length(caseops_data):
    toks = np.asarray(read_shard(caseops_data.dataset / "fineweb_val_000000.bin"), dtype=np.int64)
    side = load_val_bytes(caseops_data.dataset, len(toks))
    bos = np.flatnonzero(toks == 1)
    assert len(bos) == VAL_DOCS and (side[bos] == 0).all()
    per_doc = np.add.reduceat(side, bos)
    # SentencePiece drops a document's leading/trailing spaces, which no token stands for
    assert per_doc.tolist() == [len(d.strip(" ").encode("utf-8")) for d in caseops_data.docs[:VAL_DOCS]]
    assert (side[np.isin(toks, [4, 5, 6])] == 0).all()  # TITLE/ALLCAPS/CAPNEXT pieces stand for no byte


def test_the_manifest_names_the_dataset_and_its_byte_basis(caseops_data):
    m = json.loads((caseops_data.root / "manifest.json").read_text())
    (ds,) = m["datasets"]
    (tok,) = m["tokenizers"]
    assert ds["name"] == NAME and ds["byte_source"] == "sidecar" and ds["tokenizer_name"] == tok["name"]
    assert tok["text_transform"] == "lossless_caps_caseops_v1"
    assert tok["model_path"] == "tokenizers/fineweb_8192_bpe_lossless_caps_caseops_v1_reserved.model"
    assert tok["source_spec"]["reuse_model"].endswith(CASEOPS_TOKENIZER.name)
    assert "byte sidecar" in caseops_data.output
    d, t = data_paths(caseops_data.root, 8192, environ={})
    assert d == caseops_data.root / "datasets" / NAME and t == caseops_data.root / tok["model_path"]
    assert t.read_bytes() == CASEOPS_TOKENIZER.read_bytes()


def test_the_byte_source_is_the_sidecar_and_the_lut_would_overcount(caseops_data):
    val = load_val_tokens(caseops_data.dataset, 1024, 8192)
    src = byte_source(caseops_data.dataset, str(CASEOPS_TOKENIZER), 8192, len(val))
    assert byte_basis(src) == "sidecar"
    side = byte_count(src, val, 0, len(val) - 1)
    assert side == int(np.asarray(src[1:len(val)]).sum())
    lut = byte_count(build_byte_luts(str(CASEOPS_TOKENIZER), 8192), val, 0, len(val) - 1)
    assert 0.05 < lut / side - 1 < 0.08  # the LUT charges each operator piece 3 bytes (issue 27: +6.15 %)


def test_a_caseops_dataset_without_its_sidecar_is_refused(caseops_data, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(caseops_data.root, root)
    ds = root / "datasets" / NAME
    (ds / "fineweb_val_bytes_000000.bin").unlink()
    val = load_val_tokens(ds, 1024, 8192)
    with pytest.raises(ShardError, match="manifest scores it in sidecar bytes"):
        byte_source(ds, str(CASEOPS_TOKENIZER), 8192, len(val))
    (root / "manifest.json").unlink()  # no manifest: the tokenizer alone tells it is CaseOps
    with pytest.raises(ShardError, match="is a CaseOps tokenizer but the dataset has no byte sidecar"):
        byte_source(ds, str(CASEOPS_TOKENIZER), 8192, len(val))
    n = sum(read_shard_header(f) for f in ds.glob("fineweb_val_0*.bin"))
    for wrong in (n - 5, n + 1):  # a sidecar of another stream: shorter, or longer
        write_shard(ds / "fineweb_val_bytes_000000.bin", np.ones(wrong, dtype=np.uint16))
        with pytest.raises(ShardError, match=f"{wrong} byte counts for {n} validation tokens"):
            byte_source(ds, str(CASEOPS_TOKENIZER), 8192, len(val))


def test_build_trains_a_caseops_tokenizer_with_the_operators_reserved(tmp_path):
    import sentencepiece as spm

    src = _write_docs(tmp_path / "docs.jsonl", read_sample_docs(120))
    res = build_dataset([src], 512, tmp_path / "data", 20, workers=1, progress=False, caseops=True)
    sp = spm.SentencePieceProcessor(model_file=res["tokenizer_model"])
    assert Path(res["tokenizer_model"]).name == "fineweb_512_bpe_lossless_caps_caseops_v1_reserved.model"
    assert tuple(sp.id_to_piece(i) for i in range(4, 8)) == OPERATORS and sp.bos_id() == 1
    assert res["splits"]["val_bytes"]["tokens"] == res["splits"]["val"]["tokens"]
    plain = tmp_path / "plain"
    with pytest.raises(DatasetError, match="pass --caseops"):
        build_dataset([src], 512, plain, 20, workers=1, progress=False, tokenizer_model=res["tokenizer_model"])
    assert not plain.exists() or not any((plain / "datasets").glob("fineweb10B_*"))


def test_build_refuses_a_training_document_that_is_a_validation_document(tmp_path):
    docs = read_sample_docs(60)
    src = _write_docs(tmp_path / "docs.jsonl", docs + [docs[7]])
    with pytest.raises(DatasetError, match="document 60 of the input .* validation document 7"):
        build_dataset([src], 512, tmp_path / "data", 20, workers=1, progress=False)
    assert not list((tmp_path / "data" / "datasets").glob("fineweb10B_sp512*/fineweb_train_*"))


def test_data_check_reports_validation_documents_in_training_shards(caseops_data, tiny_data, tmp_path):
    runner = CliRunner()
    res = runner.invoke(golf_cli, ["data", "check", str(caseops_data.root)])
    assert res.exit_code == 0 and "no overlap: none of its 50 validation documents" in res.output, res.output
    # any variant: the plain sp1024 fixture, with its validation shard copied among the training shards
    root = tmp_path / "data"
    shutil.copytree(tiny_data["data_dir"], root)
    ds = root / "datasets" / "fineweb10B_sp1024"
    val = read_shard(ds / "fineweb_val_000000.bin")
    write_shard(ds / "fineweb_train_000099.bin", np.asarray(val[: len(val) // 2]))
    res = runner.invoke(golf_cli, ["data", "check", str(root)])
    assert res.exit_code == 1, res.output
    assert "fineweb10B_sp1024: OVERLAP:" in res.output and "validation documents in their training" in res.output


@pytest.fixture(scope="module")
def caseops_mirror(caseops_data, tmp_path_factory) -> Path:
    """A folder laid out like the CaseOps Hub repo (remote root `datasets/`), from the built data."""
    root = tmp_path_factory.mktemp("caseops_mirror")
    rr = root / "datasets"
    shutil.copytree(caseops_data.root / "datasets", rr / "datasets")
    shutil.copytree(caseops_data.root / "tokenizers", rr / "tokenizers")
    shutil.copy(caseops_data.root / "manifest.json", rr / "manifest.json")
    return root


@pytest.mark.parametrize("variant", ["sp8192-caseops", "sp8192_lossless_caps_caseops_v1_reserved"])
def test_download_fetches_the_sidecar_and_resumes(caseops_mirror, caseops_data, tmp_path, variant):
    from golf.data.download import default_repo, download_dataset

    assert default_repo(variant) == "romeerp/parameter-golf-caseops-v1"
    out = tmp_path / "data"
    res = download_dataset(variant, 1, out, source=caseops_mirror, progress=False, repo_id=default_repo(variant))
    ds = out / "datasets" / NAME
    assert sorted(p.name for p in ds.iterdir()) == ["fineweb_train_000000.bin", "fineweb_val_000000.bin",
                                                    "fineweb_val_bytes_000000.bin"]
    for p in ds.iterdir():
        assert p.read_bytes() == (caseops_data.dataset / p.name).read_bytes()
    assert Path(res.tokenizer_model).name == CASEOPS_TOKENIZER.name
    side = ds / "fineweb_val_bytes_000000.bin"
    cut = side.read_bytes()[:-2]  # an interrupted transfer (a new file: the fetched one is a hard link)
    side.unlink()
    side.write_bytes(cut)
    again = download_dataset(variant, 1, out, source=caseops_mirror, progress=False, repo_id=default_repo(variant))
    assert again.refetched == [f"datasets/{NAME}/fineweb_val_bytes_000000.bin"]
    assert side.read_bytes() == (caseops_data.dataset / side.name).read_bytes()
    val = load_val_tokens(ds, 1024, 8192)
    assert byte_basis(byte_source(*data_paths(out, 8192, environ={}), 8192, len(val))) == "sidecar"


def test_download_without_a_manifest_uses_the_hub_names(caseops_mirror, tmp_path):
    from golf.data.download import download_dataset

    mirror = tmp_path / "mirror"
    shutil.copytree(caseops_mirror, mirror)
    (mirror / "datasets" / "manifest.json").unlink()
    (mirror / "datasets" / "tokenizers" / CASEOPS_TOKENIZER.with_suffix(".vocab").name).unlink()
    out = tmp_path / "data"
    res = download_dataset("sp8192-caseops", 0, out, source=mirror, skip_manifest=True, progress=False,
                           repo_id="romeerp/parameter-golf-caseops-v1")
    assert sorted(res.fetched) == [f"datasets/{NAME}/fineweb_val_000000.bin",
                                   f"datasets/{NAME}/fineweb_val_bytes_000000.bin",
                                   f"tokenizers/{CASEOPS_TOKENIZER.name}"]
    d, t = data_paths(out, 8192, environ={})  # no manifest: the CaseOps names are found by the fallback
    assert d == out / "datasets" / NAME and t == out / "tokenizers" / CASEOPS_TOKENIZER.name


def test_verifier_reads_the_sidecar_pins_it_and_checks_overlap(caseops_data, tmp_path):
    from golf.verifier.scoring.artifact import load_stream, overlap_check, resolve_data

    data = resolve_data(caseops_data.root, 8192)
    assert data.dataset == caseops_data.dataset and data.tokenizer.name == CASEOPS_TOKENIZER.name
    load_stream(data, 0)
    side = read_shard(caseops_data.dataset / "fineweb_val_bytes_000000.bin")
    assert data.byte_basis == "sidecar" and data.nbytes == int(np.asarray(side[1:], dtype=np.int64).sum())
    import hashlib
    assert data.sidecar_sha256 == hashlib.sha256(np.asarray(side).astype("<u2").tobytes()).hexdigest()
    ok = overlap_check(data, caseops_data.root)
    assert not ok.failed and "no overlap" in ok.message
    train = tmp_path / "train"
    train.mkdir()
    write_shard(train / "fineweb_train_000000.bin", np.asarray(read_shard(caseops_data.dataset /
                                                                         "fineweb_train_000000.bin")))
    toks = np.asarray(read_shard(caseops_data.dataset / "fineweb_val_000000.bin"))
    bos = np.flatnonzero(toks == 1)
    write_shard(train / "fineweb_train_000001.bin", toks[bos[3]:bos[5]])  # validation documents 3 and 4
    bad = overlap_check(data, train)
    assert bad.failed and bad.measured == 2 and "= validation document 3" in bad.message


@pytest.mark.slow
def test_caseops_demo_verified_bpb_equals_the_oracles(tmp_path):
    """Issue 27, end to end on CPU: the demo's pipeline (build --caseops, train tiny, golf build, clean
    verification, golf submit) on the sample; the verified BPB equals the BPB of the same NLL sum over the
    bytes of the oracle's sidecar (the record's prepare_caseops_data.py with the demo's tokenizer)."""
    import lzma
    import math

    from golf.data.build import SAMPLE_DOCS
    from golf.protocol import SUBMISSION_NAME, VERIFY_NAME
    from golf.submission.demo import run_demo

    val_docs = 12
    r = run_demo(tmp_path / "demo", seeds=(1,), iterations=8, num_val_docs=val_docs, quiet=True,
                 log=lambda _m: None, caseops=True)
    rep = json.loads((r.artifacts[0] / VERIFY_NAME).read_text())
    assert rep["ok"] and rep["stream"]["byte_basis"] == "sidecar" and rep["stream"]["sidecar_sha256"]
    score = rep["score"]
    assert score["source"] == "trusted path" and score["tokens"] == rep["stream"]["targets"]
    sub = json.loads((r.records / SUBMISSION_NAME).read_text())
    assert sub["val_bpb"] == pytest.approx(score["val_bpb"], abs=1e-8)

    src = tmp_path / "sample.jsonl"
    src.write_bytes(lzma.decompress(SAMPLE_DOCS.read_bytes()))
    tok = next((r.data / "tokenizers").glob("*_lossless_caps_caseops_v1_reserved.model"))
    oracle = _oracle_prep(src, tmp_path / "oracle", val_docs, tokenizer=tok)  # with the demo's own tokenizer
    ours = r.data / "datasets" / f"fineweb10B_sp1024{CASEOPS_SUFFIX}"  # the oracle always names its folder sp8192
    assert (ours / "fineweb_val_000000.bin").read_bytes() == (oracle / "fineweb_val_000000.bin").read_bytes()
    side = np.asarray(read_shard(oracle / "fineweb_val_bytes_000000.bin"), dtype=np.int64)
    oracle_bytes = int(side[1:score["tokens"] + 1].sum())  # target j counts token j + 1
    assert score["bytes"] == oracle_bytes
    oracle_bpb = score["nll_sum"] / (math.log(2) * oracle_bytes)
    assert abs(score["val_bpb"] - oracle_bpb) < 1e-9
    lut = byte_count(build_byte_luts(str(tok), 1024), np.asarray(read_shard(ours / "fineweb_val_000000.bin"),
                                                                  dtype=np.int64), 0, score["tokens"])
    assert lut > 1.03 * oracle_bytes  # a LUT-scored verifier would have reported a lower BPB
