"""Optional progress bars: tqdm when it is installed and wanted, the plain iterable otherwise.

Stdlib only at import time, so it ships inside ``train_gpt.py`` (where tqdm may be absent).
"""
from __future__ import annotations

from typing import Iterable


def maybe_tqdm(iterable: Iterable, enabled: bool = True, **kw) -> Iterable:
    """``tqdm(iterable, **kw)`` if ``enabled`` and tqdm imports, else ``iterable`` unchanged."""
    if not enabled:
        return iterable
    try:
        from tqdm import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, **kw)
