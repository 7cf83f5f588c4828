"""Rank-0 run logging: official-style text lines (stdout + RUN/train.log) and RUN/metrics.jsonl."""
from __future__ import annotations

import json
import time
from pathlib import Path

from golf import TOOLKIT


class RunLog:
    def __init__(self, run_dir: str | Path | None, enabled: bool = True, echo: bool = True):
        self.enabled = enabled
        if TOOLKIT:
            self.echo = echo
        self._log = None
        if TOOLKIT:
            self.bar = None  # a tqdm bar: lines go through bar.write so the bar stays intact
            self._jsonl = None
        if enabled and run_dir is not None:
            run_dir = Path(run_dir)
            run_dir.mkdir(parents=True, exist_ok=True)
            self._log = open(run_dir / "train.log", "a", encoding="utf-8", buffering=1)
            if TOOLKIT:
                self._jsonl = open(run_dir / "metrics.jsonl", "a", encoding="utf-8", buffering=1)

    def line(self, text: str) -> None:
        if not self.enabled:
            return
        if not TOOLKIT or self.echo:
            if TOOLKIT and self.bar is not None:
                self.bar.write(text)
            else:
                print(text, flush=True)
        if self._log is not None:
            self._log.write(text + "\n")

    def event(self, text: str, record: dict | None = None) -> None:
        """One run event: its text line, and its metrics.jsonl record (``{"event": name, **fields}``).
        Shipped callers pass ``TOOLKIT and dict(event=...)``, so ``train_gpt.py`` builds no record."""
        self.line(text)
        if TOOLKIT and record:
            self.metric(**record)

    def metric(self, event: str, **fields) -> None:
        if not self.enabled or self._jsonl is None:
            return
        rec = {"event": event, "time": round(time.time(), 3), **fields}
        self._jsonl.write(json.dumps(rec, sort_keys=False) + "\n")

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
        if TOOLKIT and self._jsonl is not None:
            self._jsonl.close()
        self._log = self._jsonl = None

