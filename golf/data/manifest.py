"""What a dataset's ``manifest.json`` says about it: its entry, its byte basis, its CaseOps transform.

Toolkit only (the artifact reads the names through :func:`golf.data.shards.manifest_names` and the
byte source through :func:`golf.metric.byte_source`).  The byte basis of a dataset is recorded in
its ``datasets[]`` entry as ``byte_source`` (``"sidecar"``: score in the bytes of the original text
from ``fineweb_val_bytes_*.bin``; ``"lut"`` or absent: the tokenizer's byte tables, SPEC §2.1), and
the CaseOps transform in its tokenizer entry as ``text_transform`` (the field the record's own
``lossless_caps.py`` reads).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from golf.data.caseops import OPERATORS
from golf.data.shards import SIDECAR_SPLIT, ShardError, list_shards

SIDECAR = "sidecar"
LUT = "lut"


def read_manifest(root: str | os.PathLike) -> dict:
    """``root/manifest.json`` as a dict; {} when absent or unreadable."""
    try:
        m = json.loads((Path(root) / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return m if isinstance(m, dict) else {}


def dataset_entry(dataset_dir: str | os.PathLike) -> dict:
    """The ``datasets[]`` entry of the manifest two levels up (``ROOT/datasets/NAME``) that names this
    folder, with its tokenizer entry under ``"tokenizer"``; {} when there is none."""
    d = Path(dataset_dir).resolve()
    root = d.parent.parent
    m = read_manifest(root)
    for e in m.get("datasets") or []:
        if isinstance(e, dict) and e.get("path") and (root / str(e["path"])).resolve() == d:
            tok = next((t for t in m.get("tokenizers") or [] if isinstance(t, dict)
                        and t.get("name") == e.get("tokenizer_name")), {})
            return {**e, "tokenizer": tok}
    return {}


def is_caseops_tokenizer(tokenizer) -> bool:
    """True when pieces 4-7 are the CaseOps operators (a tokenizer for CaseOps-transformed text)."""
    import sentencepiece as spm

    sp = tokenizer if isinstance(tokenizer, spm.SentencePieceProcessor) else \
        spm.SentencePieceProcessor(model_file=str(tokenizer))
    return sp.get_piece_size() > 7 and tuple(sp.id_to_piece(i) for i in range(4, 8)) == OPERATORS


def check_byte_basis(dataset_dir: str | os.PathLike, tokenizer, has_sidecar: bool) -> str:
    """Refuse a byte basis that contradicts the dataset: its manifest asks for a sidecar that is not there
    (or says ``lut`` beside one), or a CaseOps tokenizer would be scored in LUT bytes (its operator pieces
    would count 3 bytes each: +6 % bytes, a BPB 5.8 % too low).  Returns the basis."""
    entry = dataset_entry(dataset_dir)
    want = entry.get("byte_source")
    where = f"{dataset_dir}"
    if want == SIDECAR and not has_sidecar:
        raise ShardError(f"{where}: its manifest scores it in sidecar bytes but it holds no "
                         f"fineweb_{SIDECAR_SPLIT}_*.bin; re-download or rebuild it")
    if want == LUT and has_sidecar:
        raise ShardError(f"{where}: its manifest says byte_source 'lut' but it holds byte sidecars "
                         f"(fineweb_{SIDECAR_SPLIT}_*.bin); remove one or the other")
    if not has_sidecar and is_caseops_tokenizer(tokenizer):
        raise ShardError(f"{where}: {tokenizer} is a CaseOps tokenizer but the dataset has no byte sidecar "
                         f"(fineweb_{SIDECAR_SPLIT}_*.bin): its LUT bytes would count every operator piece, "
                         "so the BPB would read low; use the dataset's sidecar (golf data build --caseops "
                         "writes one, golf data download fetches it)")
    return SIDECAR if has_sidecar else LUT


def sidecar_files(dataset_dir: str | os.PathLike) -> list[Path]:
    return list_shards(dataset_dir, SIDECAR_SPLIT)
