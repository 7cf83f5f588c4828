"""The base of every error golf raises on purpose.

Each golf module keeps its own error class (``ConfigError``, ``ShardError``, ``RunError``, ...),
deriving from :class:`GolfError` and, where callers expect one, a builtin (``ValueError``,
``RuntimeError``) listed first.  The ``golf`` command group (``golf/cli.py``) turns any
``GolfError`` into one ``Error: ...`` line and exit status 1, so a command needs no
``try``/``except`` of its own just to hide a traceback.

Standard library only: shipped inside the generated ``train_gpt.py``.  Nothing there catches
``GolfError``, so the artifact ships the builtin ``Exception`` under this name (no class, no bytes).
"""
from __future__ import annotations

from golf import TOOLKIT

if TOOLKIT:
    class GolfError(Exception):
        """A problem golf can explain in one line: the message names the bad input and what to change."""
else:
    GolfError = Exception
