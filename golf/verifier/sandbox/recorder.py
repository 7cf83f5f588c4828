"""Audit-hook recorder: the first code the sandboxed interpreter runs (``python -I -B recorder.py FD SCRIPT ...``).

This file is executed *as a script* inside the sandbox (it never imports golf, which is not
importable there).  It is only a recorder: isolation is enforced from outside the process
(namespaces, rlimits, see :mod:`golf.verifier.sandbox.run`), because an in-process hook is not a
sandbox.  It appends one JSON line per event to the already-open file descriptor ``FD``:

- ``open`` (path, mode) for every file opened, imported sources included (``io.open_code``);
- ``import`` (module name), ``spawn`` (the audit event and its arguments), ``net`` (socket
  connects, sends and lookups: these cannot reach anything in the empty network namespace, and
  are recorded so the report can say that the artifact tried);
- ``tamper`` for what can be seen of an attempt to blind the recorder: a ``sys._getframe``
  that returns a frame of this bootstrap, ``setattr`` on one of its functions (blocked), scans
  of every live object (``gc.get_objects`` / ``get_referrers``), ``sys._current_frames``;
- ``exception`` / ``exit`` with the script's outcome (``MemoryError`` and ``EFBIG`` are how a
  memory or file-size limit shows up when the artifact survives the breach).

After the hook is installed no module-level name refers to it (it lives only in the
interpreter's hook list and its own closure), so walking frames back to this bootstrap finds
nothing to replace.
"""
import sys


def _install(fd, here):
    import json
    import os
    write, dumps, fspath, abspath = os.write, json.dumps, os.fspath, os.path.abspath
    seen = set()
    net = frozenset(("socket.connect", "socket.sendto", "socket.sendmsg", "socket.bind", "socket.getaddrinfo",
                     "socket.gethostbyname", "socket.gethostbyname_ex", "socket.gethostbyaddr",
                     "socket.getnameinfo"))
    spawn = frozenset(("subprocess.Popen", "os.system", "os.posix_spawn", "os.fork", "os.forkpty", "pty.spawn",
                       "_posixsubprocess.fork_exec"))
    scans = frozenset(("gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys._current_frames"))

    def ours(obj):  # a frame or function of this bootstrap
        code = getattr(obj, "f_code", None) or getattr(obj, "__code__", None)
        return getattr(code, "co_filename", None) == here

    def emit(rec):
        try:
            write(fd, (dumps(rec, default=repr) + "\n").encode("utf-8", "replace"))
        except Exception:
            pass

    def on_open(args):
        path = args[0] if args else None
        if path is None or isinstance(path, int):
            return
        try:
            p = abspath(fspath(path))
        except Exception:
            return
        if isinstance(p, bytes):
            p = p.decode("utf-8", "replace")
        if p not in seen:
            seen.add(p)
            mode = args[1] if len(args) > 1 else None
            emit({"e": "open", "path": p, "mode": mode if isinstance(mode, str) else repr(mode)})

    def hook(event, args):
        if event == "open":
            on_open(args)
        elif event == "import":
            if ("m", args[0]) not in seen:
                seen.add(("m", args[0]))
                emit({"e": "import", "name": args[0]})
        elif event in net:
            emit({"e": "net", "event": event, "args": repr(args)[:300]})
        elif event in spawn or event.startswith(("os.exec", "os.spawn")):
            emit({"e": "spawn", "event": event, "args": repr(args)[:300]})
        elif event == "sys._getframe":
            if args and ours(args[0]):
                emit({"e": "tamper", "how": "frame walk reached the recorder bootstrap"})
        elif event == "object.__setattr__" and args and ours(args[0]):
            emit({"e": "tamper", "how": f"setattr {args[1]!r} on the recorder's function {args[0]!r}"})
            raise RuntimeError("golf sandbox: the recorder cannot be modified")
        elif event in scans:
            emit({"e": "tamper", "how": f"{event} (a scan that can reach the recorder)"})

    sys.addaudithook(hook)
    emit({"e": "start", "pid": os.getpid(), "executable": sys.executable, "bootstrap": here})
    return emit


def _main():
    import os
    import runpy
    fd, script = int(sys.argv[1]), os.path.abspath(sys.argv[2])
    emit = _install(fd, __file__)
    sys.argv = [script] + sys.argv[3:]
    sys.path.insert(0, os.path.dirname(script))
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as e:
        emit({"e": "exit", "code": e.code if isinstance(e.code, int) or e.code is None else repr(e.code)})
        raise
    except BaseException as e:
        emit({"e": "exception", "type": type(e).__name__, "errno": getattr(e, "errno", None),
              "message": str(e)[:2000]})
        raise
    emit({"e": "exit", "code": 0})


if __name__ == "__main__":
    _main()
