"""The golf-eval/1 wire format, shared by the verifier and the artifact (docs/cli-verify.md).

Shipped inside the generated ``train_gpt.py``: stdlib + numpy only.

Transport: two pipe fds named by ``GOLF_EVAL_IN`` (the artifact reads requests) and
``GOLF_EVAL_OUT`` (it writes answers); ``GOLF_EVAL_PROTOCOL`` names the protocol.  A frame is
``uint32 LE n`` + ``n`` bytes of UTF-8 JSON header + ``header["nbytes"]`` bytes of payload
(little-endian arrays, described by the header).
"""
from __future__ import annotations

import json
import os
import select
import struct
import time

import numpy as np

from golf import TOOLKIT
from golf.errors import GolfError
from golf.protocol import ENV_EVAL_IN, ENV_EVAL_OUT

PROTOCOL = "golf-eval/1"
WINDOWS = "windows"
SCORE_FIRST = "score-first"
MAX_HEADER = 1 << 16  # bytes of JSON header either side accepts


class ProtocolError(GolfError):
    """A malformed frame, a wrong count or a peer that stopped answering."""


def _wait(fd: int, write: bool, deadline: float | None) -> None:
    """Verifier side: block until ``fd`` is ready or ``deadline`` (time.monotonic) passes."""
    if not TOOLKIT or deadline is None:  # the artifact side uses blocking pipes without deadlines
        return
    left = deadline - time.monotonic()
    r, w, _ = select.select([] if write else [fd], [fd] if write else [], [], max(left, 0.0))
    if not (r or w):
        raise ProtocolError("timed out waiting for the peer")


def read_exact(fd: int, n: int, deadline: float | None = None) -> bytes:
    parts, got = [], 0
    while got < n:
        if TOOLKIT:
            _wait(fd, False, deadline)
            try:
                b = os.read(fd, min(n - got, 1 << 20))
            except BlockingIOError:
                continue
        else:
            b = os.read(fd, n - got)
        if not b:
            if TOOLKIT:
                raise ProtocolError(f"the peer closed the pipe ({got} of {n} bytes read)")
            raise EOFError
        parts.append(b)
        got += len(b)
    return b"".join(parts)


def write_all(fd: int, data: bytes, deadline: float | None = None) -> None:
    view = memoryview(data)
    while view:
        if TOOLKIT:
            _wait(fd, True, deadline)
            try:
                n = os.write(fd, view[:1 << 20])
            except BlockingIOError:
                continue
            except BrokenPipeError:
                raise ProtocolError("the peer closed the pipe") from None
        else:
            n = os.write(fd, view)
        view = view[n:]


def encode(header: dict, arrays=()) -> bytes:
    payload = b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)  # little-endian hosts only
    head = json.dumps(dict(header, nbytes=len(payload))).encode()
    return struct.pack("<I", len(head)) + head + payload


def send(fd: int, header: dict, arrays=(), deadline: float | None = None) -> None:
    data = encode(header, arrays)
    if TOOLKIT:
        write_all(fd, data, deadline)
    else:  # blocking pipe on the artifact side
        with open(fd, "wb", closefd=False) as f:
            f.write(data)


def receive(fd: int, deadline: float | None = None, max_payload: int | None = None) -> tuple[dict, bytes]:
    """One frame: ``(header, payload)``; refuses oversized or non-JSON headers and payloads over ``max_payload``."""
    (n,) = struct.unpack("<I", read_exact(fd, 4, deadline))
    if not TOOLKIT:  # the artifact side trusts the verifier's frames
        header = json.loads(read_exact(fd, n))
        return header, read_exact(fd, header["nbytes"])
    if n > MAX_HEADER:
        raise ProtocolError(f"frame header of {n} bytes (limit {MAX_HEADER})")
    try:
        header = json.loads(read_exact(fd, n, deadline).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ProtocolError(f"frame header is not UTF-8 JSON ({e})") from None
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise ProtocolError("frame header must be a JSON object with a 'type'")
    nb = header.get("nbytes", 0)
    if not isinstance(nb, int) or not 0 <= nb <= (1 << 31 if max_payload is None else max_payload):
        raise ProtocolError(f"frame payload of {nb!r} bytes (expected at most {max_payload})")
    return header, read_exact(fd, nb, deadline) if nb else b""


def split(payload: bytes, layout) -> list:
    """Cut ``payload`` into arrays of ``[(dtype, count), ...]``; the sizes must add up exactly."""
    out, at = [], 0
    for dt, count in layout:
        dt = np.dtype(dt).newbyteorder("<")
        if TOOLKIT and at + dt.itemsize * count > len(payload):
            break
        out.append(np.frombuffer(payload, dtype=dt, count=count, offset=at))
        at += dt.itemsize * count
    if TOOLKIT and (at != len(payload) or len(out) != len(layout)):
        raise ProtocolError(f"payload of {len(payload)} bytes does not hold {layout}")
    return out


def serve(info: dict, windows) -> None:
    """The artifact side of windows mode: answer the verifier until ``bye``.

    ``windows(inputs (n,T) int32, queries (n,T) int32) -> (nll (n,T), lse (n,T))`` scores
    every position statelessly; only positions from ``first`` on are sent back."""
    fin, fout = int(os.environ[ENV_EVAL_IN]), int(os.environ[ENV_EVAL_OUT])
    receive(fin)
    send(fout, dict(info, type="hello", protocol=PROTOCOL, modes=[WINDOWS]))
    while True:
        h, p = receive(fin)
        if h["type"] == "bye":
            return
        if h["type"] == "score":
            n, T = h["n"], h["T"]
            a = np.frombuffer(p, np.int32)  # inputs (n,T), queries (n,T), first (n)
            nll, lse = windows(a[:n * T].reshape(n, T), a[n * T:2 * n * T].reshape(n, T))
            keep = np.arange(T) >= a[2 * n * T:, None]
            send(fout, {"type": "scores", "id": h["id"]}, [np.float32(nll)[keep], np.float32(lse)[keep]])
