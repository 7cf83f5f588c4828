"""The sandbox API: what the artifact sees, each resource limit's own verdict, protocol pipes, inventory."""
from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from golf.verifier.report import FAIL, PASS
from golf.verifier.sandbox import run as sb
from golf.verifier.scoring.inventory import inventory, size_checks

needs_ns = pytest.mark.skipif(not sb.namespaces_available()[0], reason="namespaces refused on this machine")


def sandboxed(tmp_path: Path, code: str, weak: bool = False, **kw) -> sb.RunResult:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    (work / "train_gpt.py").write_text(textwrap.dedent(code))
    limits = sb.Limits(**{k: kw.pop(k) for k in list(kw) if k in sb.Limits.__dataclass_fields__})
    spec = sb.SandboxSpec(work=work, argv=["train_gpt.py"], private_dir=tmp_path / "private", limits=limits,
                          weak_isolation=weak, **kw)
    return sb.run(spec)


@needs_ns
def test_view_inside_and_allowed_environment(tmp_path):
    """Only work dir, inputs, the read-only python environment (golf masked), a few devices, own /proc, empty /tmp."""
    data = tmp_path / "staged"
    data.mkdir()
    (data / "val.bin").write_bytes(b"abc")
    res = sandboxed(tmp_path, """
        import os, sys, json
        import numpy, torch, sentencepiece, brotli
        try:
            import golf
            golf_ok = True
        except ImportError:
            golf_ok = False
        def writable(p):
            try:
                open(p, "w").close()
                return True
            except OSError:
                return False
        print(json.dumps({"dev": sorted(os.listdir("/dev")), "tmp": os.listdir("/tmp"), "pid": os.getpid(),
                          "procs": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
                          "golf": golf_ok, "input": open("data/val.bin").read(),
                          "input_w": writable("data/new.bin"), "env_w": writable(os.path.join(sys.prefix, "x")),
                          "work_w": writable("out.txt"), "home": os.path.exists(os.path.expanduser("~/.bashrc")),
                          "root_w": writable("/x"), "user": __import__("getpass").getuser()}))
    """, inputs={"data": data}, wall_s=120)
    assert res.verdict == "ok", res.stderr
    import json
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["dev"] == ["null", "random", "shm", "urandom", "zero"]
    # /tmp is private and empty, but for the mount points of the work dir and of a Python environment
    # that lives under the host's /tmp (bound on top of the private /tmp, not hidden by it)
    under_tmp = {Path(p).parts[2] for p in (tmp_path, sys.prefix) if Path(p).parts[1:2] == ("tmp",)}
    assert sorted(got["tmp"]) == sorted(under_tmp)
    assert got["pid"] == 2 and got["procs"] == [1, 2]  # PID namespace: the supervisor and the artifact
    assert not got["golf"] and got["input"] == "abc" and got["user"] == "golf"
    assert not got["input_w"] and not got["env_w"] and not got["root_w"] and got["work_w"] and not got["home"]
    assert {c.name: c.status for c in sb.isolation_checks(res)}["isolation.code"] == PASS


@needs_ns
def test_pass_fds_carry_a_protocol_pipe(tmp_path):
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    os.write(to_child_w, b"ping")
    os.close(to_child_w)
    res = sandboxed(tmp_path, f"""
        import os
        msg = os.read({to_child_r}, 100)
        os.write({from_child_w}, msg.upper())
    """, pass_fds=(to_child_r, from_child_w))
    os.close(from_child_w)
    os.close(to_child_r)
    assert res.verdict == "ok", res.stderr + res.stdout
    assert os.read(from_child_r, 100) == b"PING"


@pytest.mark.parametrize("code,limits,verdict", [
    ("import time; time.sleep(60)", dict(wall_s=1.5), "timeout"),
    ("while True: pass", dict(cpu_s=1), "cpu-time"),
    ("x = bytearray(3 << 30)", dict(memory_bytes=1 << 30), "memory"),
    ("open('big.bin', 'wb').write(b'0' * (4 << 20))", dict(file_bytes=1 << 20), "file-size"),
    ("import threading, time\nfor _ in range(40): threading.Thread(target=time.sleep, args=(5,)).start()\n"
     "time.sleep(5)", dict(processes=8), "processes"),
    ("import sys; sys.exit(3)", {}, "exit"),
])
def test_each_breach_has_its_own_verdict(tmp_path, code, limits, verdict):
    res = sandboxed(tmp_path, code, weak=True, **limits)
    assert res.verdict == verdict, (res.returncode, res.stderr[-500:])
    assert res.survivors == 0 and res.wall_s < 20
    failed = [c for c in sb.limit_checks(res, sb.Limits(**limits)) if c.status == FAIL]
    assert len(failed) == 1
    if verdict != "exit":
        assert failed[0].exit_code in (sb.EXIT_MEMORY, sb.EXIT_CPU_TIME, sb.EXIT_FILE_SIZE, sb.EXIT_PROCESSES,
                                       14)


def test_heartbeat_reports_elapsed_time(tmp_path):
    beats = []
    old = sb.HEARTBEAT_S
    sb.HEARTBEAT_S = 0.3
    try:
        work = tmp_path / "work"
        work.mkdir()
        (work / "t.py").write_text("import time; time.sleep(1.2)")
        res = sb.run(sb.SandboxSpec(work=work, argv=["t.py"], private_dir=tmp_path / "p", weak_isolation=True),
                     heartbeat=beats.append)
    finally:
        sb.HEARTBEAT_S = old
    assert res.verdict == "ok" and len(beats) >= 2 and beats == sorted(beats) and beats[0] >= 0.3


def test_private_dir_must_be_outside_the_work_dir(tmp_path):
    (tmp_path / "w").mkdir()
    with pytest.raises(ValueError, match="private_dir"):
        sb.start(sb.SandboxSpec(work=tmp_path / "w", argv=["x.py"], private_dir=tmp_path / "w" / "p"))


def test_forced_no_namespaces_raises_cannot_isolate(tmp_path, monkeypatch):
    monkeypatch.setenv(sb.ENV_SANDBOX_FORCE_NO_NS, "1")
    with pytest.raises(sb.CannotIsolate, match=sb.ENV_SANDBOX_FORCE_NO_NS):
        sandboxed(tmp_path, "print(1)")
    res = sandboxed(tmp_path, "print(1)", weak=True)
    assert res.verdict == "ok" and res.isolation["weak"] and res.stdout == "1\n"


def test_inventory_counts_every_file_and_copies_the_same_bytes(tmp_path):
    art = tmp_path / "art"
    (art / "__pycache__").mkdir(parents=True)
    (art / "train_gpt.py").write_text("print('hi')\n")
    (art / "__pycache__" / "blob.bin").write_bytes(os.urandom(5000))
    (art / ".env").write_text("X=1\n")
    (art / "sub").mkdir()
    (art / "sub" / "m.py").write_text("y = 2\n")
    inv = inventory(art, copy_to=tmp_path / "copy")
    assert [f.path for f in inv.files] == [".env", "__pycache__/blob.bin", "sub/m.py", "train_gpt.py"]
    assert inv.total_bytes == 12 + 5000 + 4 + 6 and not inv.refused
    for f in inv.files:
        assert (tmp_path / "copy" / f.path).read_bytes() == (art / f.path).read_bytes()
    c = {c.name: c for c in size_checks(inv, 5000)}
    assert c["size.total"].status == FAIL and c["size.total"].measured == 5022
    assert "__pycache__/blob.bin 5,000" in c["size.total"].message
    assert c["size.uncounted"].status == PASS
    assert {c.status for c in size_checks(inv, 16_000_000)} == {PASS}


@needs_ns
def test_fork_burst_is_stopped_at_the_task_limit(tmp_path):
    """200 forks against a limit of 16: refused by the pids cgroup (root) or RLIMIT_NPROC (unprivileged),
    or killed by the supervisor's count; either way the verdict is "processes" and nothing survives."""
    res = sandboxed(tmp_path, """
        import os, time
        for _ in range(200):
            if os.fork() == 0:
                time.sleep(3)
                os._exit(0)
    """, processes=16, wall_s=30)
    assert res.verdict == "processes" and res.survivors == 0, (res.returncode, res.stderr[-300:])
    assert {c.name: c.exit_code for c in sb.limit_checks(res, sb.Limits(processes=16)) if c.status == FAIL} == {
        "limits.processes": sb.EXIT_PROCESSES}


@pytest.mark.parametrize("code", [
    "import numpy\nx = numpy.ones(1 << 31)",  # numpy's own MemoryError subclass
    # torch's C++ allocators surface as RuntimeError (the message torch prints, without paying its import)
    "raise RuntimeError(\"DefaultCPUAllocator: can't allocate memory: you tried to allocate 17179869184 bytes\")",
])
def test_allocation_failures_are_a_memory_verdict(tmp_path, code):
    res = sandboxed(tmp_path, code, weak=True, memory_bytes=2 << 30)
    assert res.verdict == "memory", res.stderr[-300:]


def test_an_input_cannot_hide_a_shipped_file(tmp_path):
    (tmp_path / "w" / "data").mkdir(parents=True)
    (tmp_path / "w" / "data" / "weights.bin").write_bytes(b"x")  # an empty dir is a mount point left by a run
    with pytest.raises(ValueError, match="already has data"):
        sb.start(sb.SandboxSpec(work=tmp_path / "w", argv=["x.py"], inputs={"data": tmp_path},
                                private_dir=tmp_path / "p"))
