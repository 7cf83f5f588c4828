"""The golf-eval/2 wire format, shared by the verifier and the artifact (docs/cli-verify.md).

Shipped inside the generated ``train_gpt.py``: stdlib + numpy only.  /2 sends only inputs: the
answer at position ``j`` of a row is ``-log p(inputs[j+1] | inputs[..j])``, so a target is only
ever present as ordinary causal input (there is no query field to read it from); ``logp``
requests (audits) ask the full next-token distribution after a row's last token.

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

PROTOCOL = "golf-eval/2"
WINDOWS = "windows"
SCORE_FIRST = "score-first"
MAX_HEADER = 1 << 16  # bytes of JSON header either side accepts
MAX_PAYLOAD = 1 << 28  # the verifier never allocates more for one frame the artifact sends (it asks far less)


class ProtocolError(GolfError):
    """A malformed frame, a wrong count or a peer that stopped answering."""


class Malformed(ProtocolError):
    """The peer started a frame and broke the framing: never 'no answer' (exit 17, not 23)."""


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
                raise (Malformed if got else ProtocolError)(f"the peer closed the pipe ({got} of {n} bytes read)")
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
    """One frame: ``(header, payload)``.  Verifier side: the header length and ``nbytes`` are checked
    against ``MAX_HEADER`` and ``max_payload`` (at most ``MAX_PAYLOAD``) BEFORE anything is read; once a
    frame has begun, any fault is :class:`Malformed`."""
    (n,) = struct.unpack("<I", read_exact(fd, 4, deadline))
    if not TOOLKIT:  # the artifact side trusts the verifier's frames
        header = json.loads(read_exact(fd, n))
        return header, read_exact(fd, header["nbytes"])
    if n > MAX_HEADER:
        raise Malformed(f"frame header of {n} bytes (limit {MAX_HEADER})")
    try:
        header = json.loads(read_exact(fd, n, deadline).decode("utf-8"))
    except ProtocolError as e:
        raise Malformed(f"frame header cut short: {e}") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise Malformed(f"frame header is not UTF-8 JSON ({e})") from None
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise Malformed("frame header must be a JSON object with a 'type'")
    nb, cap = header.get("nbytes", 0), min(MAX_PAYLOAD, MAX_PAYLOAD if max_payload is None else max_payload)
    if type(nb) is not int or not 0 <= nb <= cap:
        raise Malformed(f"frame payload of {nb!r} bytes (expected an int of at most {cap})")
    try:
        return header, read_exact(fd, nb, deadline) if nb else b""
    except ProtocolError as e:
        raise Malformed(f"frame payload cut short: {e}") from None


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
        raise Malformed(f"payload of {len(payload)} bytes does not hold {layout}")
    return out


def serve(info: dict, logp) -> None:
    """The artifact side of windows mode: answer the verifier until ``bye``.

    ``logp(inputs (n,T) int) -> (n,T,V)`` log-probabilities of the next token at every position
    (a causal model, each row on its own).  ``score``: position ``j`` answers
    ``-log p(inputs[j+1] | inputs[..j])`` for ``j`` in ``[first, T-1)``; ``logp``: the whole vector
    after the last token of each row."""
    fin, fout = int(os.environ[ENV_EVAL_IN]), int(os.environ[ENV_EVAL_OUT])
    receive(fin)
    send(fout, dict(info, type="hello", protocol=PROTOCOL, modes=[WINDOWS]))
    while True:
        h, p = receive(fin)
        if h["type"] == "bye":
            return
        n, T = h.get("n", 0), h.get("T", 0)
        a = np.frombuffer(p, np.int32)
        if h["type"] == "score":  # inputs (n,T), first (n)
            x = a[:n * T].reshape(n, T)
            lp = logp(x[:, :-1])
            nll = -np.take_along_axis(lp, x[:, 1:, None].astype(np.int64), 2)[..., 0]
            keep = np.arange(T - 1) >= a[n * T:, None]
            send(fout, {"type": "scores", "id": h["id"]}, [np.float32(nll)[keep]])
        elif h["type"] == "logp":  # inputs (n,T)
            send(fout, {"type": "logp", "id": h["id"]}, [np.float32(logp(a.reshape(n, T))[:, -1])])
