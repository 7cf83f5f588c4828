"""The CaseOps transform (golf.data.caseops, SPEC §1.6) against the record's ``lossless_caps.py``.

The record's module (MIT, ``../shared/reference/frontier_1.0611/``) is run as the oracle, never copied.
The whole 7,786-document corpus takes about a minute with the oracle on a loaded 2-core box, so the
main suite checks a fixed slice and the ``slow`` test checks every document.
"""
from __future__ import annotations

import importlib.util
import json
import lzma
from pathlib import Path

import pytest

from golf.data import caseops
from golf.data.caseops import ALLCAPS, CAPNEXT, ESC, TITLE, CaseOpsError, decode, encode, original_byte_counts

REPO = Path(__file__).resolve().parents[1]
RECORD = REPO.parent / "shared" / "reference" / "frontier_1.0611"
CORPUS = REPO.parent / "shared" / "data" / "corpus" / "train_docs.jsonl.xz"
CASEOPS_TOKENIZER = RECORD / "tokenizers" / "fineweb_8192_bpe_lossless_caps_caseops_v1_reserved.model"
SLICE = 300


def _oracle():
    path = RECORD / "lossless_caps.py"
    if not path.is_file():
        pytest.skip(f"the record's lossless_caps.py (the oracle) is not at {path}")
    spec = importlib.util.spec_from_file_location("record_lossless_caps", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def corpus_docs(limit: int | None = None) -> list[str]:
    if not CORPUS.is_file():
        pytest.skip(f"corpus not found at {CORPUS}")
    docs = []
    with lzma.open(CORPUS, "rt", encoding="utf-8") as f:
        for line in f:
            docs.append(json.loads(line)["text"])
            if limit and len(docs) >= limit:
                break
    return docs


@pytest.mark.parametrize("text, want", [
    ("the cat", "the cat"),
    ("The cat", f"{TITLE}the cat"),
    ("NASA and A cat", f"{ALLCAPS}nasa and {TITLE}a cat"),
    ("McDonald iPhone ABc", f"{TITLE}mc{CAPNEXT}donald i{CAPNEXT}phone {TITLE}a{CAPNEXT}bc"),
    ("Émile ÉCOLE straße", f"Émile É{ALLCAPS}cole straße"),       # non-ASCII letters end a run, untouched
    ("CamelCase2Go", f"{TITLE}camel{CAPNEXT}case2{TITLE}go"),      # digits end a run
    (f"x{TITLE}y{ESC}", f"x{ESC}{TITLE}y{ESC}{ESC}"),              # literal operators are escaped
    ("", ""),
])
def test_encode_rules(text, want):
    assert encode(text) == want
    assert decode(want) == text


@pytest.mark.parametrize("bad", [TITLE, f"{TITLE}1", f"{ALLCAPS} x", f"a{CAPNEXT}", ESC, f"x{ALLCAPS}A"])
def test_decode_refuses_a_stray_operator(bad):
    with pytest.raises(CaseOpsError, match="operator U\\+E00"):
        decode(bad)


def _check_docs(docs: list[str]) -> None:
    lc = _oracle()
    for i, d in enumerate(docs):
        e = encode(d)
        assert decode(e) == d, f"document {i}: decode(encode(d)) != d"
        assert e == lc.encode_lossless_caps_v2(d), f"document {i}: differs from the oracle's encoding"
        assert lc.decode_lossless_caps_v2(e) == d, f"document {i}: the oracle does not decode golf's encoding"


def test_lossless_and_identical_to_the_oracle_on_a_corpus_slice():
    docs = corpus_docs(SLICE)
    assert sum(encode(d) != d for d in docs) > SLICE // 2  # the slice really has capitals to move
    _check_docs(docs)


@pytest.mark.slow
def test_lossless_and_identical_to_the_oracle_on_the_whole_corpus():
    docs = corpus_docs()
    assert len(docs) == 7786
    _check_docs(docs)


def test_original_byte_counts_match_the_oracle_and_the_text(sample_docs):
    """Per-token original bytes with the record's tokenizer: the oracle's counts for the same surfaces,
    and a document's total is its UTF-8 length (less the edge whitespace SentencePiece drops)."""
    if not CASEOPS_TOKENIZER.is_file():
        pytest.skip(f"the record's CaseOps tokenizer is not at {CASEOPS_TOKENIZER}")
    import sentencepiece as spm

    lc = _oracle()
    sp = spm.SentencePieceProcessor(model_file=str(CASEOPS_TOKENIZER))
    assert [sp.id_to_piece(i) for i in range(4, 8)] == [TITLE, ALLCAPS, CAPNEXT, ESC]
    docs = sample_docs[:100] + [f" lead{ESC}{TITLE}AND\U0001F600 Trail ", "ÉCOLE ﬁne  ＡＢ"]
    enc = [encode(d) for d in docs]
    ops = 0
    for d, e, (ids, surfaces) in zip(docs, enc, caseops.ids_and_surfaces(sp, enc)):
        assert ids == sp.encode(e)
        counts = original_byte_counts(surfaces)
        name = lc.LOSSLESS_CAPS_CASEOPS_V1
        assert counts == lc.surface_piece_original_byte_counts(surfaces, text_transform_name=name)
        assert sum(counts) == len(d.strip(" ").encode("utf-8"))
        # an operator piece counts 0 bytes unless an ESC piece right before it makes it text (3 bytes)
        escaping = False
        for i, c in zip(ids, counts):
            if 4 <= i <= 7:
                assert c == (3 if escaping else 0)
                escaping = i == 7 and not escaping
        ops += sum(4 <= i <= 7 for i in ids)
    assert ops > 1000


def test_original_byte_counts_escape_across_pieces():
    assert original_byte_counts([f"a{TITLE}", "b", ESC, TITLE, "x"]) == [1, 1, 0, 3, 1]
    with pytest.raises(CaseOpsError, match="dangling ESC"):
        original_byte_counts(["a", ESC])
