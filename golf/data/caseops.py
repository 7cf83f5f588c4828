"""CaseOps: the reversible case transform of the CaseOps data variant (SPEC §1.6).

Written for golf from the spec; the record's ``lossless_caps.py`` is only the test oracle
(tests/test_caseops.py compares outputs on the whole corpus).

Rules, over each maximal run of ASCII letters ``[A-Za-z]+`` (nothing else is touched):

- an all-lower-case run stays as it is;
- an all-upper-case run of two or more letters becomes ``ALLCAPS`` + the run lower-cased;
- a run whose first letter is upper case and whose other letters are lower case (``Title``,
  and a lone capital ``A``) becomes ``TITLE`` + the run lower-cased;
- any other run: ``TITLE`` if its first letter is upper case, then each letter lower-cased,
  with ``CAPNEXT`` before every later letter that was upper case (``McDonald`` →
  ``TITLE m c CAPNEXT d o n a l d``; ``iPhone`` → ``i CAPNEXT p h o n e``);
- a literal operator character in the text is written ``ESC`` + that character.

The four operators are private-use characters U+E001..U+E004 (TITLE, ALLCAPS, CAPNEXT, ESC);
the CaseOps tokenizer reserves each as its own piece (ids 4-7).  Lower-casing an ASCII letter
keeps its UTF-8 length, so a token's bytes in the *original* text are its surface's UTF-8
bytes minus those of the operators it holds (an escaped operator is text: it counts);
:func:`original_byte_counts` computes them, and the validation byte sidecar stores them.
"""
from __future__ import annotations

import re
from typing import Iterable

from golf.errors import GolfError

TRANSFORM_NAME = "lossless_caps_caseops_v1"  # the name the record's manifest gives this transform
TITLE, ALLCAPS, CAPNEXT, ESC = "\ue001", "\ue002", "\ue003", "\ue004"
OPERATORS = (TITLE, ALLCAPS, CAPNEXT, ESC)
OPERATOR_BYTES = 3  # UTF-8 length of each operator character

_ENCODE_RE = re.compile("(?<![A-Za-z])[A-Za-z]*[A-Z][A-Za-z]*|[\ue001-\ue004]")
# ESC + any char | ALLCAPS + lower-case run | TITLE/CAPNEXT + one letter | a stray operator (malformed)
_DECODE_RE = re.compile("\ue004(.)|\ue002([a-z]+)|[\ue001\ue003]([a-z])|([\ue001-\ue004])", re.S)
_OPS_RE = re.compile("[\ue001-\ue004]")


class CaseOpsError(ValueError, GolfError):
    """Text that is not a CaseOps encoding (a stray or dangling operator)."""


def _encode_run(m: re.Match) -> str:
    w = m.group()
    if w in OPERATORS:
        return ESC + w
    low = w.lower()
    if len(w) > 1 and w.isupper():
        return ALLCAPS + low
    head = TITLE if w[0] <= "Z" else ""
    if w[1:] == low[1:]:
        return head + low
    return head + low[0] + "".join(CAPNEXT + c.lower() if c <= "Z" else c for c in w[1:])


def encode(text: str) -> str:
    """The CaseOps form of ``text`` (lower-cased ASCII letters + operators); :func:`decode` inverts it."""
    return _ENCODE_RE.sub(_encode_run, text)


def _decode_one(m: re.Match) -> str:
    esc, caps, letter, stray = m.groups()
    if stray is not None:
        where = m.start()
        raise CaseOpsError(f"operator U+{ord(stray):04X} at character {where} is not followed by what it needs "
                           "(ESC: a character; TITLE/ALLCAPS/CAPNEXT: a lower-case ASCII letter)")
    if esc is not None:
        return esc
    return (caps if caps is not None else letter).upper()


def decode(text: str) -> str:
    """The original text of a CaseOps encoding; raises :class:`CaseOpsError` on a stray operator."""
    return _DECODE_RE.sub(_decode_one, text)


def original_byte_counts(surfaces: Iterable[str]) -> list[int]:
    """Bytes of the original text behind each piece, given the pieces' surfaces in order (the exact
    fragments of the transformed text SentencePiece cut them from).

    Every character counts its UTF-8 length except an operator that is not escaped (0 bytes);
    an ``ESC`` at the end of one piece escapes the first character of the next.
    """
    counts = []
    escaped = False  # the previous character was an unescaped ESC
    for s in surfaces:
        n = len(s.encode("utf-8"))
        if escaped or _OPS_RE.search(s):
            for ch in s:
                if escaped:
                    escaped = False
                elif ch in OPERATORS:
                    n -= OPERATOR_BYTES
                    escaped = ch == ESC
        counts.append(n)
    if escaped:
        raise CaseOpsError("dangling ESC operator at the end of the text")
    return counts


def ids_and_surfaces(sp, texts: list[str], num_threads: int = 1) -> list[tuple[list[int], list[str]]]:
    """Token ids and piece surfaces (the exact fragment of each text a piece was cut from) of each
    text, from one SentencePiece call: ``offset_mapping`` (sentencepiece >= 0.2.1), else the
    immutable proto of older releases."""
    try:
        maps = sp.encode(texts, out_type="offset_mapping", num_threads=num_threads)
    except (ValueError, TypeError):  # a release without offset_mapping
        out = []
        for t in texts:
            pieces = sp.encode_as_immutable_proto(t).pieces
            out.append(([p.id for p in pieces], [p.surface for p in pieces]))
        return out
    return [(m["ids"], [t[a:b] for a, b in m["offsets"]]) for t, m in zip(texts, maps)]
