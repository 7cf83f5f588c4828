"""Fetch published challenge data (shards + tokenizer) following the Hub repo's manifest (SPEC §1.4).

Remote layout (inside the HF *dataset* repo, under a remote root, default ``datasets``)::

    <root>/manifest.json
    <root>/datasets/fineweb10B_<variant>/fineweb_{val,train}_NNNNNN.bin
    <root>/tokenizers/fineweb_<V>_bpe.{model,vocab}
    <root>/docs_selected.jsonl (+ docs_selected.source_manifest.json)

Everything lands at the same relative path under the output folder (root prefix
stripped).  Sources: the Hub through ``huggingface_hub.hf_hub_download`` (its cache, its
in-call resume, then a hard link or copy into place, like the official downloader), or a
local mirror folder with the same layout (``source=``).  Existing files are kept when
valid (shards: header + size checked), invalid ones are fetched again; every fetched shard
is validated.  The manifest's origin is recorded in ``manifest.source.json`` so a manifest
from another repo is never used silently (SPEC §8 pitfall 6).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

from golf.data import published as pub
from golf.data.shards import CASEOPS_SUFFIX, SIDECAR_SPLIT, ShardError, read_shard_header, shard_name
from golf.errors import GolfError
from golf.fsutil import atomic_write_json
from golf.progress import maybe_tqdm

DEFAULT_REPO = "willdepueoai/parameter-golf"
VARIANT_REPOS = {
    "sp1024": "willdepueoai/parameter-golf",
    "byte260": "willdepueoai/parameter-golf",
    "sp4096": "kevclark/parameter-golf",
    "sp8192": "kevclark/parameter-golf",
    "sp8192-caseops": "romeerp/parameter-golf-caseops-v1",
}
ALTERNATIVE_REPOS = {"sp4096": ("InAbsentia/parameter-golf-sp4096",)}
DEFAULT_REMOTE_ROOT = "datasets"
DEFAULT_TRAIN_SHARDS = 80
ORIGIN_FILE = "manifest.source.json"
# `--variant spV-caseops` = the Hub's own dataset name for the CaseOps export (SPEC 1.4/1.6)
CASEOPS_ALIAS, CASEOPS_HUB_SUFFIX = "-caseops", CASEOPS_SUFFIX
_VARIANT_RE = re.compile(rf"^(byte260|sp[0-9]+({CASEOPS_ALIAS}|{re.escape(CASEOPS_HUB_SUFFIX)})?)$")


class DownloadError(RuntimeError, GolfError):
    """A download could not be done; the message names the file/repo and the problem."""


def check_variant(variant: str) -> str:
    if not _VARIANT_RE.match(variant or ""):
        raise DownloadError(
            f"unknown variant {variant!r}: expected sp<vocab size> (sp1024, sp4096, sp8192, ...), byte260 or "
            f"sp8192{CASEOPS_ALIAS} (= sp8192{CASEOPS_HUB_SUFFIX})"
        )
    return variant


def dataset_suffix(variant: str) -> str:
    """The dataset folder's name after ``fineweb10B_``: the variant, with ``-caseops`` spelled as the Hub does."""
    return variant.replace(CASEOPS_ALIAS, CASEOPS_HUB_SUFFIX)


def is_caseops_variant(variant: str) -> bool:
    return dataset_suffix(variant).endswith(CASEOPS_HUB_SUFFIX)


def sidecar_files(dataset_rel: str, files_val: int) -> list[str]:
    """The validation byte sidecars of a CaseOps dataset: one ``fineweb_val_bytes_NNNNNN.bin`` per validation
    shard (same header and layout, so the same header/size check applies when they are fetched)."""
    return [f"{dataset_rel}/{shard_name(SIDECAR_SPLIT, i)}" for i in range(files_val)]


def default_repo(variant: str) -> str:
    """``MATCHED_FINEWEB_REPO_ID`` if set, else the repo the records used for this variant."""
    alias = variant.replace(CASEOPS_HUB_SUFFIX, CASEOPS_ALIAS)
    return os.environ.get("MATCHED_FINEWEB_REPO_ID") or VARIANT_REPOS.get(alias, DEFAULT_REPO)


def default_remote_root() -> str:
    return os.environ.get("MATCHED_FINEWEB_REMOTE_ROOT_PREFIX", DEFAULT_REMOTE_ROOT)


# ----------------------------------------------------------------------------- sources

class HubSource:
    """``hf_hub_download(repo_type="dataset")`` into the HF cache; token from ``HF_TOKEN``."""

    def __init__(self, repo_id: str, remote_root: str, revision: str = "main", cache_dir: str | None = None,
                 endpoint: str | None = None):
        self.repo_id, self.remote_root, self.revision = repo_id, remote_root.strip("/"), revision
        self.cache_dir, self.endpoint = cache_dir, endpoint
        self.offline: str | None = None  # why the Hub is unreachable (then only the HF cache is used)
        self._checked = False

    def describe(self) -> str:
        return f"hf://datasets/{self.repo_id}" + (f"@{self.revision}" if self.revision != "main" else "")

    def remote(self, rel: str) -> str:
        return f"{self.remote_root}/{rel}" if self.remote_root else rel

    def _check_network(self) -> None:
        """Resolve the Hub's host name once: without it huggingface_hub retries for about 24 s before
        giving up, so a failed lookup switches to the local HF cache at once (``offline``)."""
        from urllib.parse import urlparse

        from huggingface_hub import constants

        self._checked = True
        if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
            return  # the proxy resolves the name, not this machine
        host = urlparse(self.endpoint or constants.ENDPOINT).hostname
        if not host:
            return
        try:
            socket.getaddrinfo(host, 443)
        except (socket.gaierror, UnicodeError) as e:
            self.offline = f"cannot resolve {host} ({getattr(e, 'strerror', None) or e}; no network?)"

    def fetch(self, rel: str) -> Path:
        from huggingface_hub import errors as hf_errors
        from huggingface_hub import hf_hub_download

        if not self._checked:
            self._check_network()
        remote = self.remote(rel)
        where = f"{self.repo_id}:{remote}"
        try:
            path = hf_hub_download(self.repo_id, remote, repo_type="dataset", revision=self.revision,
                                   cache_dir=self.cache_dir, endpoint=self.endpoint,
                                   token=os.environ.get("HF_TOKEN") or None, local_files_only=bool(self.offline))
        except hf_errors.GatedRepoError:
            raise DownloadError(f"{where}: the repo is gated; accept its terms and set HF_TOKEN") from None
        except hf_errors.RepositoryNotFoundError:
            raise DownloadError(f"{self.repo_id}: dataset repo not found (or private: set HF_TOKEN)") from None
        except hf_errors.RevisionNotFoundError:
            raise DownloadError(f"{self.repo_id}: revision {self.revision!r} not found") from None
        except hf_errors.RemoteEntryNotFoundError:
            raise DownloadError(f"{where}: file not found in the repo") from None
        except hf_errors.LocalEntryNotFoundError as e:
            why = self.offline or f"cannot reach the Hub ({e})"
            raise DownloadError(f"{where}: {why} and the file is not in the HF cache; check the connection "
                                "or copy from a local folder with --source DIR") from None
        except hf_errors.HfHubHTTPError as e:
            raise DownloadError(f"{where}: download failed ({e})") from None
        except OSError as e:
            raise DownloadError(f"{where}: download failed ({e})") from None
        return Path(path)

    def published(self, rels: list[str]) -> tuple[dict[str, dict], str | None]:
        """``(what the Hub publishes for each of rels, why nothing could be asked)`` (one batched call)."""
        if not self._checked:
            self._check_network()
        if self.offline:
            return {}, self.offline
        prefix = f"{self.remote_root}/" if self.remote_root else ""
        try:
            return pub.hub_digests(self.repo_id, [self.remote(r) for r in rels], self.revision, self.endpoint,
                                   os.environ.get("HF_TOKEN") or None, strip=prefix), None
        except Exception as e:  # noqa: BLE001  (huggingface_hub's HTTP errors: the download still fails closed below)
            return {}, f"the Hub's file metadata could not be read ({type(e).__name__}: {str(e)[:200]})"

    def discard(self, path: Path) -> None:
        """Drop a fetched file whose bytes are wrong from the HF cache (its blob and the snapshot link)."""
        real = path.resolve()
        for p in (path, real):
            with contextlib.suppress(OSError):
                p.unlink()


class LocalSource:
    """A local folder laid out like the Hub repo (``<dir>/<remote root>/...``, or the root itself)."""

    def __init__(self, root: str | os.PathLike, remote_root: str):
        root = Path(root)
        if not root.is_dir():
            raise DownloadError(f"{root}: source folder not found")
        sub = root / remote_root.strip("/") if remote_root.strip("/") else root
        # a mirror of the repo has <root>/<remote root>/manifest.json; a plain data folder has <root>/manifest.json
        if (sub / "manifest.json").is_file() or not (root / "manifest.json").is_file():
            self.root = sub
        else:
            self.root = root
        self.label = str(root)

    def describe(self) -> str:
        return f"local mirror {self.label}"

    def fetch(self, rel: str) -> Path:
        p = self.root / rel
        if not p.is_file():
            raise DownloadError(f"{p}: not found in the source mirror")
        return p

    def published(self, _rels: list[str]) -> tuple[dict[str, dict], str | None]:
        return {}, "a local mirror publishes no digests"

    def discard(self, path: Path) -> None:
        pass  # never delete from the user's mirror


def _place(src: Path, dest: Path) -> None:
    """Hard-link (or copy) ``src`` to ``dest`` atomically."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    real = src.resolve()
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    if tmp.exists():
        tmp.unlink()
    try:
        try:
            os.link(real, tmp)
        except OSError:
            shutil.copyfile(real, tmp)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# ----------------------------------------------------------------------------- plan

@dataclass
class DownloadResult:
    source: str
    repo_id: str
    variant: str
    data_dir: str
    dataset_dir: str
    tokenizer_model: str | None
    files_val: int
    train_shards: int
    fetched: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    refetched: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _read_json(path: Path) -> dict | None:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as e:
        raise DownloadError(f"{path}: unreadable JSON ({e})") from None
    return obj if isinstance(obj, dict) else None


def _write_json(path: Path, obj) -> None:
    atomic_write_json(path, obj)


def _local_ok(path: Path) -> tuple[bool, str | None]:
    """(usable, problem).  Shards must have a valid header and exact size."""
    if not path.is_file():
        return False, None
    if path.suffix == ".bin":
        try:
            read_shard_header(path)
        except ShardError as e:
            return False, str(e)
        return True, None
    if path.stat().st_size == 0:
        return False, f"{path}: empty file"
    return True, None


@dataclass
class _Origin:
    """Where the files come from: the source, and the repo + remote root recorded beside what it fetched."""
    src: object  # HubSource | LocalSource
    repo_id: str
    remote_root: str
    revision: str
    name: str  # what error messages name: the mirror folder or the Hub repo
    local: bool


def _load_manifest(out: Path, org: _Origin, skip_manifest: bool, refresh_manifest: bool, warnings: list,
                   say) -> dict | None:
    """The manifest: the local one when it came from the same repo, else fetched (None: --skip-manifest).
    A manifest that came from another repo is never used silently."""
    manifest_path, origin_path = out / "manifest.json", out / ORIGIN_FILE
    if manifest_path.exists() and not refresh_manifest:
        rec = _read_json(origin_path)
        if rec is None:
            warnings.append(f"{manifest_path} has no recorded origin; using it as {org.name}'s "
                            "(--refresh-manifest fetches it again)")
        elif rec.get("repo_id") != org.repo_id or rec.get("remote_root", org.remote_root) != org.remote_root:
            came = rec.get("repo_id") or rec.get("source") or "another source"
            other_root = rec.get("remote_root") not in (None, org.remote_root)
            raise DownloadError(
                f"{manifest_path} came from {came}"
                + (f" (remote root {rec.get('remote_root')!r})" if other_root else "")
                + f", not {org.repo_id}: its datasets may not match. Delete it or pass --refresh-manifest"
            )
        manifest = _read_json(manifest_path)
        if manifest is None:
            raise DownloadError(f"{manifest_path}: not a JSON object (delete it or pass --refresh-manifest)")
        return manifest
    if skip_manifest:
        return None
    say(f"fetching manifest.json from {org.src.describe()}")
    _place(org.src.fetch("manifest.json"), manifest_path)
    _write_json(origin_path, {"repo_id": org.repo_id, "remote_root": org.remote_root, "revision": org.revision,
                              "source": org.src.describe()})
    manifest = _read_json(manifest_path)
    if manifest is None:
        raise DownloadError(f"{org.src.describe()}: manifest.json is not a JSON object")
    return manifest


def _dataset_files(manifest: dict, manifest_path: Path, variant: str, train_shards: int,
                   org: _Origin) -> tuple[int, str, list[str]]:
    """``(validation shard count, dataset folder, tokenizer files)`` of ``variant`` from the manifest."""
    dataset_name = f"fineweb10B_{dataset_suffix(variant)}"
    datasets = [d for d in manifest.get("datasets", []) if isinstance(d, dict)]
    entry = next((d for d in datasets if d.get("name") == dataset_name), None)
    if entry is None:
        have = ", ".join(str(d.get("name")) for d in datasets) or "none"
        raise DownloadError(f"{org.name}: the manifest has no dataset {dataset_name} (it has: {have}); "
                            "pick another --variant" + ("" if org.local else " or --repo-id"))
    stats = entry.get("stats") or {}
    try:
        files_val, files_train = int(stats["files_val"]), int(stats["files_train"])
    except (KeyError, TypeError, ValueError):
        raise DownloadError(f"{manifest_path}: dataset {dataset_name} has no stats.files_val/files_train") from None
    dataset_rel = str(entry.get("path") or f"datasets/{dataset_name}").strip("/")
    tok = next((t for t in manifest.get("tokenizers", [])
                if isinstance(t, dict) and t.get("name") == entry.get("tokenizer_name")), None)
    if tok is None:
        raise DownloadError(f"{manifest_path}: tokenizer {entry.get('tokenizer_name')!r} of {dataset_name} "
                            "is not listed in the manifest")
    if train_shards > files_train:
        raise DownloadError(f"--train-shards {train_shards} is more than the {files_train} train shards "
                            f"{org.name} has for {variant}")
    return files_val, dataset_rel, [str(tok[k]).strip("/") for k in ("model_path", "vocab_path", "path") if tok.get(k)]


def _dataset_files_unlisted(variant: str, warnings: list) -> tuple[int, str, list[str]]:
    """What :func:`_dataset_files` returns, guessed from the official layout when there is no manifest."""
    tokenizer_files = []
    if is_caseops_variant(variant):  # the record ships the .model only
        v = variant[2:].split(CASEOPS_ALIAS)[0].split(CASEOPS_HUB_SUFFIX)[0]
        tokenizer_files = [f"tokenizers/fineweb_{v}_bpe{CASEOPS_HUB_SUFFIX}.model"]
    elif variant.startswith("sp"):
        v = variant[2:]
        tokenizer_files = [f"tokenizers/fineweb_{v}_bpe.model", f"tokenizers/fineweb_{v}_bpe.vocab"]
    else:
        warnings.append("no manifest: the byte260 tokenizer file is not known, only shards are fetched")
    warnings.append("no manifest: assuming 1 validation shard and not checking --train-shards")
    return 1, f"datasets/fineweb10B_{dataset_suffix(variant)}", tokenizer_files


def _previous_origin(out: Path, dataset_rel: str, variant: str, org: _Origin,
                     warnings: list) -> tuple[Path, dict | None, bool]:
    """``(per-dataset origin record, its content, stale)``.  Files of one variant must all come from one repo:
    files of a different (or `golf data build`) origin are fetched again rather than kept because they look valid."""
    path = (out / dataset_rel).parent / f".{Path(dataset_rel).name}.source.json"
    prev = _read_json(path) if path.exists() else None
    stale = prev is not None and (prev.get("repo_id"), prev.get("remote_root")) != (org.repo_id, org.remote_root)
    if stale:
        came = prev.get("repo_id") or prev.get("source") or "another source"
        warnings.append(f"the local fineweb10B_{variant} files came from {came}; fetching them again from "
                        f"{org.src.describe()}")
    return path, prev, stale


@contextlib.contextmanager
def _hub_bars(src, progress: bool | None):
    """huggingface_hub's own per-file bars follow the same rule as golf's (golf.progress)."""
    if not isinstance(src, HubSource) or not (progress is False or (progress is None and not sys.stderr.isatty())):
        yield
        return
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_off = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        yield
    finally:
        if not was_off:
            enable_progress_bars()


def _fetch_one(src, rel: str, dest: Path, problem: str | None, say, check: _PublishedCheck | None = None) -> None:
    """Fetch ``rel`` into ``dest`` (replacing a bad local copy); a fetched shard must be valid, and every
    file must carry the bytes its source publishes (``check``)."""
    if problem:
        say(f"re-fetching {rel}: {problem}")
        dest.unlink(missing_ok=True)
    got = src.fetch(rel)
    _place(got, dest)
    if check is not None:
        check.fetched(rel, dest, got)
    if dest.suffix == ".bin":
        try:
            read_shard_header(dest)
        except ShardError as e:
            dest.unlink(missing_ok=True)
            raise DownloadError(f"{src.describe()}: fetched shard is invalid: {e}") from None


class _PublishedCheck:
    """The downloaded bytes against what the source publishes (:mod:`golf.data.published`): a kept file
    is checked unless the manifest already records it with the published digest and its size; a fetched
    file that does not match is removed (and dropped from the HF cache) with an error naming it."""

    def __init__(self, org: _Origin, out: Path, files: list[str], warnings: list):
        self.src, self.out = org.src, out
        self.published, why = org.src.published(files)
        self.source = org.src.describe()
        self.prior = pub.recorded(_read_json(out / "manifest.json"))
        self.records: dict[str, dict] = {}
        if why and not org.local:
            warnings.append(f"no published sha256 checked: {why}")

    def kept_problem(self, rel: str, dest: Path) -> str | None:
        """Why a local file that looks valid must be fetched again (None: keep it)."""
        want = self.published.get(rel)
        if want is None:
            return None
        old, st = self.prior.get(rel), dest.stat()
        if old and old.get("sha256") == want.get("sha256", old["sha256"]) and old.get("size") == st.st_size \
                and old.get("mtime_ns") == st.st_mtime_ns:  # checked before and not touched since: not read again
            self.records[rel] = old
            return None
        try:
            self._keep(rel, dest, pub.verify_bytes(dest, rel, want, self.source))
        except pub.PublishedMismatch:
            return "its bytes differ from the published sha256"
        return None

    def _keep(self, rel: str, dest: Path, entry: dict) -> None:
        self.records[rel] = {**entry, "mtime_ns": dest.stat().st_mtime_ns}

    def fetched(self, rel: str, dest: Path, fetched_from: Path) -> None:
        want = self.published.get(rel)
        if want is None:
            return
        try:
            self._keep(rel, dest, pub.verify_bytes(dest, rel, want, self.source))
        except pub.PublishedMismatch as e:
            dest.unlink(missing_ok=True)
            self.src.discard(fetched_from)
            raise DownloadError(str(e)) from None

    def save(self) -> None:
        pub.record(self.out / "manifest.json", self.records)


def _fetch_all(org: _Origin, out: Path, files: list[str], result: DownloadResult, prev: dict | None, stale: bool,
               progress: bool | None, say, check: _PublishedCheck | None = None) -> None:
    """Keep every valid local file of the same origin, fetch the rest; fills ``result``'s lists."""
    bar = maybe_tqdm(None, progress, total=len(files), desc=f"{result.variant} from {org.src.describe()}",
                     unit="file", dynamic_ncols=True)
    try:
        for rel in files:
            dest = out / rel
            ok, problem = _local_ok(dest)
            if ok and stale and rel not in ("docs_selected.jsonl", "docs_selected.source_manifest.json"):
                ok, problem = False, f"from {prev.get('repo_id') or prev.get('source')}, not {org.repo_id}"
            if ok and check is not None:
                problem = check.kept_problem(rel, dest)
                ok = problem is None
            if ok:
                result.skipped.append(rel)
            else:
                _fetch_one(org.src, rel, dest, problem, say, check)
                (result.refetched if problem else result.fetched).append(rel)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()


def download_dataset(variant: str = "sp1024", train_shards: int = DEFAULT_TRAIN_SHARDS,
                     out_dir: str | os.PathLike = "data", repo_id: str | None = None, remote_root: str | None = None,
                     source: str | os.PathLike | None = None, with_docs: bool = False, skip_manifest: bool = False,
                     refresh_manifest: bool = False, revision: str = "main", cache_dir: str | None = None,
                     endpoint: str | None = None, progress: bool | None = None, log=None) -> DownloadResult:
    """Fetch the tokenizer, all validation shards and the first ``train_shards`` train shards of ``variant``."""
    say = log or (lambda _msg: None)
    check_variant(variant)
    if train_shards < 0:
        raise DownloadError(f"--train-shards must be >= 0, got {train_shards}")
    repo_id = repo_id or default_repo(variant)
    remote_root = default_remote_root() if remote_root is None else remote_root
    out = Path(out_dir)  # created by the first file placed in it, so a failed start leaves nothing behind
    src = LocalSource(source, remote_root) if source else HubSource(repo_id, remote_root, revision, cache_dir, endpoint)
    org = _Origin(src, repo_id, remote_root, revision, src.label if source else repo_id, bool(source))
    warnings: list[str] = []
    manifest = _load_manifest(out, org, skip_manifest, refresh_manifest, warnings, say)
    if manifest is not None:
        files_val, dataset_rel, tokenizer_files = _dataset_files(manifest, out / "manifest.json", variant,
                                                                 train_shards, org)
    else:
        files_val, dataset_rel, tokenizer_files = _dataset_files_unlisted(variant, warnings)
    files = list(tokenizer_files)
    files += [f"{dataset_rel}/{shard_name('val', i)}" for i in range(files_val)]
    if is_caseops_variant(variant):
        files += sidecar_files(dataset_rel, files_val)
    files += [f"{dataset_rel}/{shard_name('train', i)}" for i in range(train_shards)]
    if with_docs:
        files += ["docs_selected.jsonl", "docs_selected.source_manifest.json"]
    result = DownloadResult(source=src.describe(), repo_id=repo_id, variant=variant, data_dir=str(out),
                            dataset_dir=str(out / dataset_rel),
                            tokenizer_model=str(out / tokenizer_files[0]) if tokenizer_files else None,
                            files_val=files_val, train_shards=train_shards, warnings=warnings)
    ds_origin_path, prev, stale = _previous_origin(out, dataset_rel, variant, org, warnings)
    check = _PublishedCheck(org, out, files, warnings)
    with _hub_bars(src, progress):
        try:
            _fetch_all(org, out, files, result, prev, stale, progress, say, check)
        finally:
            check.save()  # what was verified stays on record, also when a later file fails
    ds_origin_path.parent.mkdir(parents=True, exist_ok=True)
    _write_json(ds_origin_path, {"repo_id": repo_id, "remote_root": remote_root})
    return result
