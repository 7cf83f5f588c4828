"""Trusted supervisor between the verifier and an untrusted artifact (stdlib only, run as ``python -I -S``).

:mod:`golf.verifier.sandbox.run` starts it (inside ``unshare --user --mount --pid --net --fork``
when namespaces are available) with one argument, a JSON config.  It

1. in namespace mode, builds the artifact's whole file system view (see :func:`build_root`)
   and ``pivot_root``\\s into it: the pinned python environment read-only (binds, masks and symlinks
   chosen by :mod:`golf.verifier.sandbox.environment`), the work
   dir, the read-only inputs, ``/dev/{null,zero,random,urandom}``, a fresh ``/proc`` of its
   own PID namespace, an empty ``/tmp``;
2. reports ``{"ready": ...}`` (or ``{"error": ...}``) on the status pipe;
3. forks the artifact's interpreter (``python -I -B recorder.py FD SCRIPT ...``) with every
   capability dropped, ``no_new_privs`` and the rlimits set, and supervises it: the whole tree's
   task count and CPU time are polled against the limits (RLIMIT_NPROC does not bind uid 0);
4. when the artifact's main process ends, kills every other process left (in namespace mode it
   is PID 1, so the kernel kills the namespace when it exits) and reports ``{"end": ...}``.

The artifact never sees this process's files or the status pipe (close-on-exec, not dumpable).
"""
import ctypes
import json
import os
import resource
import select
import signal
import sys
import time

POLL_S = 0.05
EXIT_GRACE_S = 0.5  # between a process closing its files on exit and becoming reapable
CAPS_MAX = 64
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_SET_CHILD_SUBREAPER, PR_SET_DUMPABLE = 24, 38, 36, 4
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = \
    1, 2, 4, 8, 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
SYS_CAPSET = {"x86_64": 126, "aarch64": 91}
DEV_NODES = ("null", "zero", "random", "urandom")

_libc = ctypes.CDLL(None, use_errno=True)


if __name__ == "__main__":  # run as a standalone script (stdlib only): golf may not be importable there
    _ErrorBase = Exception
else:
    from golf.errors import GolfError as _ErrorBase


class SetupError(_ErrorBase):
    pass


def _check(rc, what):
    if rc != 0:
        e = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(e)}")


def mount(src, dst, fstype=None, flags=0, data=None):
    _check(_libc.mount(src.encode() if src else None, dst.encode(), fstype.encode() if fstype else None,
                       ctypes.c_ulong(flags), data.encode() if data else None), f"mount {src} -> {dst}")


def bind(src, dst, readonly=True, recursive=True):
    mount(src, dst, None, MS_BIND | (MS_REC if recursive else 0))
    if readonly:
        mount(None, dst, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _mkpoint(path, is_dir):
    if is_dir:
        os.makedirs(path, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if not os.path.exists(path):
            open(path, "a").close()


def build_root(cfg, root):
    """Mount the artifact's view under ``root`` (a fresh tmpfs) and pivot into it."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    os.makedirs(root, exist_ok=True)
    mount("golf-sandbox", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755")
    empty = os.path.join(root, ".golf-empty")
    open(empty, "w").close()
    # the private /tmp first: a Python environment or input that lives under the host's /tmp is bound
    # on top of it below, instead of being hidden by it
    os.makedirs(root + "/tmp", exist_ok=True)
    mount("golf-tmp", root + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,size={cfg['tmp_bytes']}")
    for src in cfg["ro_binds"]:  # python environment and system libraries, at their own paths
        if os.path.exists(src):
            _mkpoint(root + src, os.path.isdir(src))
            bind(src, root + src)
    for path, target in cfg.get("links", ()):  # symlinks on the way to bound files (/lib -> usr/lib, venv python)
        os.makedirs(os.path.dirname(root + path), exist_ok=True)
        if not os.path.lexists(root + path):
            os.symlink(target, root + path)
    for path in cfg["masks"]:  # inside the binds: files of no allowed distribution, large non-code files
        if os.path.isdir(path):
            mount("golf-mask", root + path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "mode=555")
        elif os.path.exists(path):
            bind(empty, root + path)
    dev = root + "/dev"
    os.makedirs(dev, exist_ok=True)
    mount("golf-dev", dev, "tmpfs", MS_NOSUID, "mode=755")
    for name in DEV_NODES + tuple(cfg["devices"]):
        src = "/dev/" + name
        if os.path.exists(src):
            _mkpoint(dev + "/" + name, os.path.isdir(src))
            bind(src, dev + "/" + name, readonly=False, recursive=os.path.isdir(src))
    os.makedirs(dev + "/shm", exist_ok=True)
    mount("golf-shm", dev + "/shm", "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,size={cfg['tmp_bytes']}")
    for src in cfg["rw_binds"]:  # the work dir (and, for the legacy wrapper, its parent)
        _mkpoint(root + src, True)
        bind(src, root + src, readonly=False)
    for dst, src in cfg["inputs"]:
        _mkpoint(root + dst, os.path.isdir(src))
        bind(src, root + dst)
    os.makedirs(root + "/proc", exist_ok=True)
    mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    boot = root + cfg["recorder_inside"]
    _mkpoint(boot, False)
    with open(cfg["recorder_src"], "rb") as f, open(boot, "wb") as g:
        g.write(f.read())
    old = root + "/.old-root"
    os.makedirs(old, exist_ok=True)
    nr = SYS_PIVOT_ROOT.get(os.uname().machine)
    if nr is None:
        raise SetupError(f"pivot_root: unsupported machine {os.uname().machine}")
    _check(_libc.syscall(nr, root.encode(), old.encode()), "pivot_root")
    os.chdir("/")
    _check(_libc.umount2(b"/.old-root", MNT_DETACH), "umount old root")
    os.rmdir("/.old-root")
    os.unlink("/.golf-empty") if os.path.exists("/.golf-empty") else None
    mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def drop_privileges():
    """No capabilities (in the user namespace) and no way to regain any: the bounding set is emptied, so
    exec gives uid 0 nothing, and no_new_privs disables set-uid binaries."""
    for cap in range(CAPS_MAX):
        _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    nr = SYS_CAPSET.get(os.uname().machine)
    if nr is not None:
        hdr = (ctypes.c_uint32 * 2)(0x20080522, 0)
        data = (ctypes.c_uint32 * 6)()
        _check(_libc.syscall(nr, hdr, data), "capset")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def set_limits(lim):
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if lim.get("cpu_s"):
        s = int(lim["cpu_s"] + 0.999)
        resource.setrlimit(resource.RLIMIT_CPU, (s, s + 1))
    if lim.get("memory_bytes"):
        resource.setrlimit(resource.RLIMIT_AS, (lim["memory_bytes"], lim["memory_bytes"]))
    if lim.get("file_bytes"):
        resource.setrlimit(resource.RLIMIT_FSIZE, (lim["file_bytes"], lim["file_bytes"]))
    if lim.get("processes"):
        resource.setrlimit(resource.RLIMIT_NPROC, (lim["processes"], lim["processes"]))


def exec_artifact(cfg, events_fd, namespaced):
    """In the forked child: close what the artifact must not have, limit, drop privileges, exec."""
    keep = set(cfg["pass_fds"]) | {0, 1, 2}
    rec_fd = max(keep) + 1
    if events_fd != rec_fd:
        os.dup2(events_fd, rec_fd, inheritable=True)
    os.set_inheritable(rec_fd, True)
    keep.add(rec_fd)
    lo = 3
    for fd in sorted(keep) + [65536]:
        if fd >= lo:
            os.closerange(lo, fd)
            lo = fd + 1
    for fd in cfg["pass_fds"]:
        os.set_inheritable(fd, True)
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    os.chdir(cfg["work"])
    set_limits(cfg["limits"])
    drop_privileges()  # also without namespaces: a root verifier's artifact then execs with no capabilities
    argv = [cfg["python"], "-I", "-B", cfg["recorder_inside"] if namespaced else cfg["recorder_src"],
            str(rec_fd)] + cfg["argv"]
    os.execve(cfg["python"], argv, cfg["env"])


def descendants(root_pid):
    """Live descendants of ``root_pid`` (by PPid), as {pid: (threads, cpu seconds incl. reaped children)}."""
    procs, tick = {}, os.sysconf("SC_CLK_TCK")
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                st = f.read().decode("ascii", "replace")
        except OSError:
            continue
        fields = st[st.rfind(")") + 2:].split()
        ppid, threads = int(fields[1]), int(fields[17])
        cpu = sum(int(x) for x in fields[11:15]) / tick
        procs[int(name)] = (ppid, threads, cpu)
    out, todo = {}, [root_pid]
    while todo:
        p = todo.pop()
        for pid, (ppid, threads, cpu) in procs.items():
            if ppid == p and pid not in out:
                out[pid] = (threads, cpu)
                todo.append(pid)
    return out


def kill_tree(me):
    """SIGKILL every descendant of this process until none is left; returns how many could not be killed."""
    for _ in range(100):
        tree = descendants(me)
        if not tree:
            return 0
        for pid in tree:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _reap(None)
        time.sleep(0.02)
    return len(descendants(me))


class EventLog:
    """Copies the recorder's pipe into the verifier's events file.  A pipe, not a file the artifact
    holds: what was recorded cannot be truncated or rewritten afterwards."""

    def __init__(self, read_fd, file_fd, cap):
        self.r, self.f, self.left, self.eof = read_fd, file_fd, cap, False
        os.set_blocking(read_fd, False)

    def pump(self, timeout):
        if self.eof:
            time.sleep(timeout)
            return
        ready, _, _ = select.select([self.r], [], [], timeout)
        while ready:
            try:
                chunk = os.read(self.r, 1 << 20)
            except BlockingIOError:
                return
            if not chunk:
                self.eof = True
                return
            if self.left > 0:
                os.write(self.f, chunk[:self.left])
                self.left -= len(chunk)

    def note(self, rec):
        os.write(self.f, (json.dumps(rec) + "\n").encode())

    def drain(self, timeout=1.0):
        deadline = time.monotonic() + timeout
        while not self.eof and time.monotonic() < deadline:
            self.pump(0.05)


def _reap(child):
    """Reap every exited child (orphans are re-parented here); the wait status of ``child`` if it was one."""
    found = None
    while True:
        try:
            pid, wstatus = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return found
        if pid == 0:
            return found
        if pid == child:
            found = wstatus


def _wait_briefly(child, grace):
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        wstatus = _reap(child)
        if wstatus is not None:
            return wstatus
        time.sleep(0.01)
    return None


def _tree_usage(me):
    """(tasks incl. threads, CPU seconds of the tree incl. reaped children) of this process's descendants."""
    tree = descendants(me)
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return sum(t for t, _ in tree.values()), ru.ru_utime + ru.ru_stime + sum(c for _, c in tree.values())


def supervise(cfg, child, log, status):
    """Wait for the artifact's main process while watching the tree's size and CPU time."""
    me, lim = os.getpid(), cfg["limits"]
    max_tasks, breach, cpu, wstatus, closed = 1, None, 0.0, None, False
    while wstatus is None:
        log.pump(POLL_S)
        wstatus = _reap(child)
        if wstatus is None and log.eof and not closed:  # an exiting process closes its files first
            wstatus = _wait_briefly(child, EXIT_GRACE_S)
            closed = True
            if wstatus is None:
                log.note({"e": "tamper", "how": "the recorder's log was closed while the artifact ran"})
        if wstatus is not None:
            break
        tasks, cpu = _tree_usage(me)
        max_tasks = max(max_tasks, tasks)
        if lim.get("processes") and tasks > lim["processes"]:
            breach = "processes"
        elif lim.get("cpu_s") and cpu > lim["cpu_s"] + 1.0:
            breach = "cpu-time"
        if breach:
            os.kill(child, signal.SIGKILL)
            _, wstatus = os.waitpid(child, 0)
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    left = kill_tree(me)
    log.drain()
    code = os.waitstatus_to_exitcode(wstatus)
    status({"end": {"returncode": code, "breach": breach, "max_tasks": max_tasks, "survivors": left,
                    "cpu_s": round(max(cpu, ru.ru_utime + ru.ru_stime), 3)}})


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        cfg = json.load(f)
    status_fd = cfg["status_fd"]
    os.set_inheritable(status_fd, False)

    def status(msg):
        os.write(status_fd, (json.dumps(msg) + "\n").encode())

    namespaced = cfg["mode"] == "ns"
    _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    events_fd = os.open(cfg["events"], os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    in_cgroup = False
    if cfg.get("cgroup_procs"):  # before any fork: every descendant is then counted by pids.max
        try:
            with open(cfg["cgroup_procs"], "w") as f:
                f.write("0")
            in_cgroup = True
        except OSError:
            pass
    try:
        if namespaced:
            if os.getpid() != 1:
                raise SetupError("not the first process of a new PID namespace")
            build_root(cfg, cfg["root"])
            os.chdir(cfg["work"])
    except (SetupError, OSError) as e:
        status({"error": str(e)})
        return 3
    ns = os.readlink("/proc/self/ns/pid") if namespaced else None
    status({"ready": {"pid_ns": ns, "cgroup": in_cgroup}})
    rec_r, rec_w = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(rec_r)
            exec_artifact(cfg, rec_w, namespaced)
        finally:
            os._exit(127)
    os.close(rec_w)
    signal.signal(signal.SIGTERM, lambda *_: os.kill(child, signal.SIGKILL))
    supervise(cfg, child, EventLog(rec_r, events_fd, cfg["events_cap"]), status)
    return 0


if __name__ == "__main__":
    sys.exit(main())
