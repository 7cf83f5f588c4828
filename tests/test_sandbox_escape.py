"""Escape suite: one hostile train_gpt.py per technique (tests/fixtures/escape/), run through the sandbox.

Each fixture is handed more than a real attacker finds (the shard's path, the original artifact
folder, the report path, the repo, a listening port on the host).  Each test shows the attack is
impossible (no marker outside, the shard's secret never reaches the output, the listener gets
nothing, the report is untouched) or fails with its exact verdict.  The same fixtures run on the
simulated "no namespaces" path, which must fail closed.
"""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import golf
from golf.verifier.report import FAIL, PASS, WARN
from golf.verifier.sandbox import run as sb
from golf.verifier.scoring.inventory import inventory, size_checks

FIX = Path(__file__).parent / "fixtures" / "escape"
FIXTURES = sorted(p.stem for p in FIX.glob("*.py") if not p.stem.startswith("_"))
NS_OK = sb.namespaces_available()[0]
needs_ns = pytest.mark.skipif(not NS_OK, reason="this machine refuses user/mount/pid/net namespaces")


@pytest.fixture
def world(tmp_path):
    """The host-side things an artifact must never reach."""
    secret = "SECRET-" + secrets.token_hex(8)
    shard = tmp_path / "data" / "datasets" / "fineweb10B_sp64" / "fineweb_train_000001.bin"
    shard.parent.mkdir(parents=True)
    shard.write_text(secret * 4)
    outside = tmp_path / "outside"
    outside.mkdir()
    report = tmp_path / "report.json"
    report.write_text('{"val_bpb": 1.2345}')
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(4)
    lsock.setblocking(False)
    yield SimpleNamespace(tmp=tmp_path, secret=secret, shard=shard, outside=outside, report=report, listener=lsock,
                          orig=tmp_path / "orig_art")
    lsock.close()


def make_artifact(world, name: str) -> Path:
    """The original artifact folder: the fixture as train_gpt.py, the helper, a __pycache__ payload and a dotfile."""
    art = world.orig
    art.mkdir()
    shutil.copy(FIX / f"{name}.py", art / "train_gpt.py")
    shutil.copy(FIX / "_attack.py", art / "_attack.py")
    (art / "__pycache__").mkdir()
    (art / "__pycache__" / "payload.bin").write_text("PYCACHE-" + world.secret)
    (art / ".hidden_mod.py").write_text("SECRET = 'dotfile module'\n")
    return art


def run_fixture(world, name: str, weak: bool = False, wall_s: float = 60.0, **env) -> sb.RunResult:
    art = make_artifact(world, name)
    work = world.tmp / "work"
    inv = inventory(art, copy_to=work)
    assert not inv.refused
    spec = sb.SandboxSpec(work=work, argv=["train_gpt.py"], private_dir=world.tmp / "private", weak_isolation=weak,
                          limits=sb.Limits(wall_s=wall_s),
                          env={"ATTACK_SHARD": str(world.shard), "ATTACK_OUTSIDE": str(world.outside),
                               "ATTACK_ORIG": str(art), "ATTACK_REPORT": str(world.report),
                               "ATTACK_REPO": str(Path(golf.__file__).parent.parent),
                               "ATTACK_PORT": str(world.listener.getsockname()[1]), **env})
    return sb.run(spec)


def attempts(res: sb.RunResult) -> dict[str, str]:
    out = {}
    for line in res.stdout.splitlines():
        if line.startswith("ATTEMPT "):
            name, _, rest = line[len("ATTEMPT "):].partition(": ")
            out[name] = rest.split(" ", 1)[0]
    return out


def assert_contained(world, res: sb.RunResult) -> None:
    """Nothing got out: no marker, no secret in any output or file of the work dir, no connection, report intact."""
    assert list(world.outside.iterdir()) == []
    assert world.secret not in res.stdout + res.stderr
    for p in (world.tmp / "work").rglob("*"):
        if p.is_file() and not p.is_symlink() and p.name != "payload.bin":
            assert world.secret not in p.read_text(errors="replace"), p
    with pytest.raises(BlockingIOError):
        world.listener.accept()
    assert world.report.read_text() == '{"val_bpb": 1.2345}'
    assert res.survivors == 0 and not res.isolation["weak"]


def check(res: sb.RunResult, name: str):
    return {c.name: c for c in sb.isolation_checks(res) + sb.limit_checks(res, sb.Limits())}[name]


@needs_ns
def test_frame_walk_hook_disable_then_shard_connect_spawn_write(world):
    res = run_fixture(world, "frame_walk")
    assert_contained(world, res)
    a = attempts(res)
    assert a["framewalk read shard"] == a["framewalk connect"] == a["framewalk write outside"] == "blocked"
    assert "framewalk spawn" in a  # the shell ran, inside the same namespaces, and reached nothing
    assert check(res, "isolation.recorder").status == FAIL
    hows = {e["how"].split(" on ")[0] for e in res.of("tamper")}
    assert hows == {"frame walk reached the recorder bootstrap", "setattr '__code__'"}
    assert check(res, "isolation.network").status == FAIL  # the connect attempt is still on record
    assert check(res, "isolation.processes").status == WARN


@needs_ns
def test_symlink_to_shard_and_outside(world):
    res = run_fixture(world, "symlink")
    assert_contained(world, res)
    a = attempts(res)
    assert a["symlink create"] == "ok"  # the work dir is writable, but the target does not exist inside
    assert a["symlink read shard"] == a["symlink write outside"] == "blocked"


def test_symlink_in_artifact_is_refused_and_listed(tmp_path):
    art = tmp_path / "art"
    art.mkdir()
    (art / "train_gpt.py").write_text("print(1)\n")
    os.symlink("/etc/hostname", art / "model.ptz")
    os.mkfifo(art / "pipe")
    inv = inventory(art, copy_to=tmp_path / "copy")
    assert [p for p, _ in inv.refused] == ["model.ptz", "pipe"]
    assert "symlink" in inv.refused[0][1] and not (tmp_path / "copy" / "model.ptz").exists()
    c = {c.name: c for c in size_checks(inv, 16_000_000)}
    assert c["size.uncounted"].status == FAIL and "model.ptz: symlink" in c["size.uncounted"].message


@needs_ns
def test_proc_self_root_cwd_and_supervisor_paths(world):
    res = run_fixture(world, "proc_paths")
    assert_contained(world, res)
    a = attempts(res)
    assert len(a) == 11 and set(a.values()) == {"blocked"}, a


@needs_ns
def test_fork_exec_shell_reaches_nothing(world):
    res = run_fixture(world, "fork_exec")
    assert_contained(world, res)
    # the pinned environment holds no /bin/sh at all (only the interpreter and the allowed distributions):
    # the exec fails, and nothing of the shard reaches the output
    assert "the shell read nothing" in res.stdout and world.secret not in res.stdout
    assert not res.exposure.visible("/bin/sh") and not res.exposure.visible("/usr/bin/sh")


@needs_ns
def test_pycache_and_dotfile_payloads_are_counted(world):
    res = run_fixture(world, "payload")
    assert_contained(world, res)
    a = attempts(res)
    assert a["orig __pycache__ payload"] == "blocked"  # the original folder is not visible
    assert a["dotfile via /proc/self/cwd"] == "ok"  # it is in the copy, so it was counted:
    inv = inventory(world.orig)
    assert {"__pycache__/payload.bin", ".hidden_mod.py", "train_gpt.py"} <= {f.path for f in inv.files}
    c = {c.name: c for c in size_checks(inv, inv.total_bytes - 1)}
    assert c["size.total"].status == FAIL and c["size.total"].measured == sum(
        p.stat().st_size for p in world.orig.rglob("*") if p.is_file())
    assert check(res, "isolation.code").status == PASS


@needs_ns
@pytest.mark.parametrize("hang", [False, True])
def test_setsid_daemon_dies_with_the_run(world, hang):
    res = run_fixture(world, "daemon", wall_s=2.0 if hang else 60.0, ATTACK_DELAY="1.5",
                      **({"ATTACK_HANG": "1"} if hang else {}))
    assert res.verdict == ("timeout" if hang else "ok") and "daemon started" in res.stdout
    time.sleep(2.5)  # past the daemon's delay: had it survived, it would have written by now
    assert_contained(world, res)
    assert check(res, "isolation.survivors").status == PASS
    assert check(res, "limits.wall").status == (FAIL if hang else PASS)


@needs_ns
def test_installed_golf_is_not_importable(world):
    res = run_fixture(world, "import_golf")
    assert_contained(world, res)
    assert "GOLF-REACHED" not in res.stdout
    assert set(attempts(res).values()) == {"blocked"}
    c = check(res, "isolation.code")  # reaching for golf's source outside the sandbox is on record
    assert c.status == FAIL and "/proc/self/root" in c.message and "golf/verifier/lint/stats.py" in c.message


@pytest.mark.parametrize("name", FIXTURES)
def test_no_namespaces_fails_closed(world, name, monkeypatch):
    monkeypatch.setenv(sb.ENV_SANDBOX_FORCE_NO_NS, "1")
    with pytest.raises(sb.CannotIsolate) as e:
        run_fixture(world, name)
    c = sb.cannot_isolate_check(e.value)
    assert c.status == FAIL and c.exit_code == sb.EXIT_CANNOT_ISOLATE
    assert list(world.outside.iterdir()) == [] and not (world.tmp / "private" / "stdout.txt").exists()


def test_weak_isolation_is_marked_and_still_catches_golf(world, monkeypatch):
    """With --weak-isolation the run happens without namespaces: reported as weak, and reaching the
    installed golf is still caught by the recorder."""
    monkeypatch.setenv(sb.ENV_SANDBOX_FORCE_NO_NS, "1")
    res = run_fixture(world, "import_golf", weak=True)
    assert res.isolation["weak"] and res.isolation["namespaces"] == []
    checks = sb.mark_weak(sb.isolation_checks(res))
    c = {c.name: c for c in checks}
    assert c["isolation.namespaces"].status == WARN
    assert c["isolation.code"].status == FAIL and "golf" in c["isolation.code"].message
    assert all("[weak isolation]" in x.message for x in checks)


def test_weak_isolation_still_kills_the_daemon(world, monkeypatch):
    monkeypatch.setenv(sb.ENV_SANDBOX_FORCE_NO_NS, "1")
    res = run_fixture(world, "daemon", weak=True, ATTACK_DELAY="1.5")
    assert res.verdict == "ok" and res.survivors == 0
    time.sleep(2.5)
    assert list(world.outside.iterdir()) == [] and world.report.read_text() == '{"val_bpb": 1.2345}'


def test_daemon_cannot_rewrite_the_verifier_report(tmp_path, tiny_data):
    """Through verify_artifact: the setsid daemon of a foreign artifact, told the report path, is dead
    before the report is written and never rewrites it."""
    from golf.verifier.report import write_json
    from golf.verifier.scoring.artifact import VerifyOptions, verify_artifact
    report, outside = tmp_path / "report.json", tmp_path / "outside"
    outside.mkdir()
    art = tmp_path / "art"
    art.mkdir()
    (art / "train_gpt.py").write_text(f"import os\nos.environ.update(ATTACK_REPORT={str(report)!r}, "
                                      f"ATTACK_OUTSIDE={str(outside)!r}, ATTACK_DELAY='1.5')\n"
                                      + (FIX / "daemon.py").read_text())
    shutil.copy(FIX / "_attack.py", art / "_attack.py")
    (art / "model.ptz").write_bytes(b"not a known codec")
    sec = verify_artifact(art, VerifyOptions(data_dir=tiny_data["data_dir"], val_max_tokens=1024,
                                                       eval_seq_len=64), log=lambda _m: None)
    assert any("daemon started" in r["stdout_tail"] for r in sec.info["runs"].values())
    write_json(report, {"checks": [c.to_dict() for c in sec.checks], "val_bpb": None})
    before = report.read_text()
    time.sleep(2.5)
    assert report.read_text() == before and list(outside.iterdir()) == []


@needs_ns
def test_recorder_log_cannot_be_erased(world):
    res = run_fixture(world, "erase_log")
    assert_contained(world, res)
    a = attempts(res)
    assert a["erase truncate"] == "blocked" and a["erase close"] == "ok"  # a pipe: nothing to truncate
    assert check(res, "isolation.network").status == FAIL  # the attempt made before is still on record
    assert "the recorder's log was closed while the artifact ran" in {e["how"] for e in res.of("tamper")}


SYSTEM_PYTHON = "/usr/bin/python3"
UNPRIV = """
import os, sys
sys.path.insert(0, {root!r})
from pathlib import Path
from golf.verifier.sandbox import run as sb
base = Path({root!r}) / "run"
r = sb.run(sb.SandboxSpec(work=base / "work", argv=["train_gpt.py"], private_dir=base / "private",
                          env={{"ATTACK_SHARD": {shard!r}, "ATTACK_OUTSIDE": {outside!r}, "ATTACK_ORIG": {orig!r}}},
                          limits=sb.Limits(wall_s=60, processes=16)))
print("UID", os.getuid(), "VERDICT", r.verdict, "WEAK", r.isolation["weak"], "SURVIVORS", r.survivors)
sys.stdout.write(r.stdout)
"""


@needs_ns
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv") or not os.path.exists(SYSTEM_PYTHON),
                    reason="needs root (to switch to nobody), setpriv and a system python")
def test_no_root_needed_unprivileged_user_is_contained(world):
    """The same isolation as nobody (uid 65534) with the system python: user namespaces, no root."""
    import subprocess
    import tempfile
    root = Path(tempfile.mkdtemp(prefix="golf-unpriv-"))
    try:
        os.chmod(root, 0o755)
        shutil.copytree(Path(golf.__file__).parent, root / "golf", ignore=shutil.ignore_patterns("__pycache__"))
        work = root / "run" / "work"
        work.mkdir(parents=True)
        shutil.copy(FIX / "proc_paths.py", work / "train_gpt.py")
        shutil.copy(FIX / "_attack.py", work / "_attack.py")
        shard, outside = root / "data" / world.shard.name, root / "outside"  # both reachable by nobody on the host
        shard.parent.mkdir()
        shutil.copy(world.shard, shard)
        outside.mkdir()
        for d in (root / "run", work, outside):
            shutil.chown(d, 65534, 65534)
        (root / "check.py").write_text(UNPRIV.format(root=str(root), shard=str(shard), outside=str(outside),
                                                     orig=str(world.orig)))
        r = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", SYSTEM_PYTHON,
                            "-I", str(root / "check.py")], capture_output=True, text=True, timeout=120, cwd="/")
        marker_written = list(outside.iterdir())
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert "UID 65534 VERDICT ok WEAK False SURVIVORS 0" in r.stdout, r.stdout + r.stderr
    assert r.stdout.count(": blocked") == 11 and ": ok" not in r.stdout and world.secret not in r.stdout
    assert marker_written == []
