"""Push training checkpoints to a Hugging Face model repo in the background; fetch the latest back.

Layout in the repo: ``checkpoints/step_NNNNNN.pt`` (the newest ``keep`` are kept),
``latest.json`` (``{"step": N, "path": "checkpoints/step_NNNNNN.pt"}``) and any extra files
(``config.json``, ``final_model.pt``, ``final.json``).  Every push is one commit made by
``HfApi.create_commit`` from a daemon thread, so training never waits on the network; a
push requested while another is running replaces any queued one (only the newest
checkpoint matters).  Failures are logged and retried with the next push.

The token comes from ``HF_TOKEN`` (or the cached login); the endpoint from ``HF_ENDPOINT``.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from pathlib import Path
from typing import Callable

from golf.errors import GolfError

CKPT_IN_REPO = re.compile(r"^checkpoints/step_(\d{6,})\.pt$")


class HubError(RuntimeError, GolfError):
    pass


def _api(endpoint: str | None = None, token: str | None = None):
    try:
        from huggingface_hub import HfApi
    except ImportError as e:  # pragma: no cover - dependency of golf
        raise HubError("huggingface_hub is not installed (pip install huggingface_hub)") from e
    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None
    token = token or os.environ.get("HF_TOKEN") or None
    return HfApi(endpoint=endpoint, token=token)


class HubSync:
    """Background pusher; ``push(path, step)`` returns at once."""

    def __init__(self, repo_id: str, *, endpoint: str | None = None, token: str | None = None,
                 private: bool = True, keep: int = 2, log: Callable[[str], None] = print,
                 staging_dir: str | os.PathLike | None = None):
        if not repo_id or "/" not in repo_id:
            raise HubError(f"hub repo must look like 'user/name', got {repo_id!r}")
        self.repo_id, self.private, self.keep, self.log = repo_id, private, keep, log
        self.api = _api(endpoint, token)
        self.staging = Path(staging_dir) if staging_dir else None
        self._cv = threading.Condition()
        self._pending: tuple | None = None
        self._busy = False
        self._closed = False
        self._repo_ready = False
        self.pushed: list[int] = []  # steps committed so far
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._worker, name="golf-hub-sync", daemon=True)
        self._thread.start()

    # -- public ---------------------------------------------------------------------------
    def push(self, checkpoint: str | os.PathLike, step: int, extra: dict[str, str | os.PathLike] | None = None) -> None:
        """Queue ``checkpoint`` (+ ``extra`` {path_in_repo: local file}) for upload; never blocks on the network."""
        src = Path(checkpoint)
        staged = self._stage(src, step)
        extras = {}
        for name, p in (extra or {}).items():
            if Path(p).is_file():
                extras[name] = self._stage(Path(p), step, name.replace("/", "_"))
        with self._cv:
            if self._closed:
                raise HubError("HubSync is closed")
            old = self._pending
            self._pending = (staged, step, extras)
            self._cv.notify_all()
        if old is not None:
            self._discard(old)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the queue is empty and no push is running; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while self._pending is not None or self._busy:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cv.wait(left)
        return True

    def close(self, log_wait: bool = False, timeout: float | None = None) -> None:
        if log_wait and (self._pending is not None or self._busy):
            self.log(f"hub: waiting for the upload to {self.repo_id} to finish ...")
        self.wait(timeout)
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        self._thread.join(timeout=5)

    # -- internals ----------------------------------------------------------------------
    def _stage(self, src: Path, step: int, name: str | None = None) -> Path:
        """Hard-link (or copy) ``src`` aside so local checkpoint pruning cannot pull it from under the upload."""
        stage_dir = self.staging or (src.parent / ".hub_staging")
        stage_dir.mkdir(parents=True, exist_ok=True)
        dst = stage_dir / f"{step:06d}_{name or src.name}"
        if dst.exists():
            dst.unlink()
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)
        return dst

    @staticmethod
    def _discard(job: tuple) -> None:
        staged, _, extras = job
        for p in [staged, *extras.values()]:
            try:
                Path(p).unlink()
            except FileNotFoundError:
                pass

    def _worker(self) -> None:
        while True:
            with self._cv:
                while self._pending is None and not self._closed:
                    self._cv.wait()
                if self._pending is None and self._closed:
                    return
                job, self._pending = self._pending, None
                self._busy = True
            try:
                self._commit(*job)
            except Exception as e:  # network / auth problems must not kill training
                msg = f"hub: push of step {job[1]} to {self.repo_id} failed: {type(e).__name__}: {e}"
                self.errors.append(msg)
                self.log(msg)
            finally:
                self._discard(job)
                with self._cv:
                    self._busy = False
                    self._cv.notify_all()

    def _commit(self, staged: Path, step: int, extras: dict[str, Path]) -> None:
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete

        if not self._repo_ready:
            self.api.create_repo(self.repo_id, repo_type="model", private=self.private, exist_ok=True)
            self._repo_ready = True
        path_in_repo = f"checkpoints/step_{step:06d}.pt"
        latest = json.dumps({"step": step, "path": path_in_repo}).encode()
        ops = [CommitOperationAdd(path_in_repo=path_in_repo, path_or_fileobj=str(staged)),
               CommitOperationAdd(path_in_repo="latest.json", path_or_fileobj=latest)]
        ops += [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(p)) for name, p in extras.items()]
        if self.keep > 0:
            try:
                remote = sorted(int(m.group(1)) for f in self.api.list_repo_files(self.repo_id)
                                if (m := CKPT_IN_REPO.match(f)))
            except Exception:
                remote = list(self.pushed)
            keep_steps = sorted(set(remote + [step]))[-self.keep:]
            ops += [CommitOperationDelete(path_in_repo=f"checkpoints/step_{s:06d}.pt")
                    for s in remote if s not in keep_steps and s != step]
        t0 = time.monotonic()
        self.api.create_commit(self.repo_id, operations=ops, commit_message=f"golf checkpoint step {step}")
        self.pushed.append(step)
        self.log(f"hub: pushed step {step} to {self.repo_id} ({staged.stat().st_size / 2**20:.1f} MiB, "
                 f"{time.monotonic() - t0:.1f}s)")


def latest_remote_checkpoint(repo_id: str, *, endpoint: str | None = None, token: str | None = None) -> str | None:
    """Path in the repo of the newest ``checkpoints/step_*.pt`` (None if the repo has none)."""
    api = _api(endpoint, token)
    try:
        files = api.list_repo_files(repo_id)
    except Exception as e:
        name = type(e).__name__
        if "RepositoryNotFound" in name:
            return None
        raise HubError(f"cannot list {repo_id} on the Hub: {name}: {e}") from None
    steps = sorted((int(m.group(1)), f) for f in files if (m := CKPT_IN_REPO.match(f)))
    return steps[-1][1] if steps else None


def download_latest(repo_id: str, dest_dir: str | os.PathLike, *, endpoint: str | None = None,
                    token: str | None = None) -> Path | None:
    """Download the newest checkpoint of ``repo_id`` into ``dest_dir/step_NNNNNN.pt``; None if there is none."""
    from huggingface_hub import hf_hub_download

    remote = latest_remote_checkpoint(repo_id, endpoint=endpoint, token=token)
    if remote is None:
        return None
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / Path(remote).name
    if target.is_file():
        return target
    tmp = dest_dir / ".hub_download"
    try:
        got = hf_hub_download(repo_id, remote, local_dir=str(tmp),
                              endpoint=endpoint or os.environ.get("HF_ENDPOINT") or None,
                              token=token or os.environ.get("HF_TOKEN") or None)
    except Exception as e:
        raise HubError(f"cannot download {remote} from {repo_id}: {type(e).__name__}: {e}") from None
    os.replace(got, target)
    shutil.rmtree(tmp, ignore_errors=True)
    return target
