"""Progress bars: the one tqdm idiom of every golf command.

``enabled`` is ``None`` by default, passed to tqdm as ``disable=None``: a bar only when its stream
(stderr) is a terminal, so logs, pipes and notebooks' captured output get no carriage-return
frames. ``True`` forces a bar (``--progress``), ``False`` never draws one (``--no-progress``,
``--quiet``).

Stdlib only at import time, so it ships inside ``train_gpt.py`` (where tqdm may be absent).
"""
from __future__ import annotations

from typing import Iterable


def maybe_tqdm(iterable: Iterable | None = None, enabled: bool | None = None, **kw):
    """``tqdm(iterable, **kw)`` (a bar to ``update()`` by hand when ``iterable`` is None), or
    ``iterable`` itself when ``enabled`` is False or tqdm is not installed."""
    if enabled is False:
        return iterable
    try:
        from tqdm import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, disable=None if enabled is None else False, **kw)
