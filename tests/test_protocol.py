"""golf-eval/2 framing, the verifier's window plan (coverage) and the untruncated metric paths."""
from __future__ import annotations

import json
import os
import struct
import threading

import numpy as np
import pytest
import torch

from golf.data.loader import load_val_tokens
from golf.metric import build_byte_luts, eval_plain, eval_plain_ragged, eval_sliding
from golf.verifier.scoring import audits as A
from golf.verifier.scoring import protocol as P
from golf.verifier.scoring.streaming import Client, Scores, bpb, run_windows, stream_bytes, window_plan


def test_frames_round_trip_and_malformed_frames_are_refused():
    r, w = os.pipe()
    x = np.arange(6, dtype="<i4").reshape(2, 3)
    P.send(w, {"type": "score", "id": 7, "n": 2, "T": 3}, [x, x + 1])
    h, p = P.receive(r, deadline=None)
    assert h == {"type": "score", "id": 7, "n": 2, "T": 3, "nbytes": 48}
    a, b = P.split(p, [("i4", 6), ("i4", 6)])
    assert (a.reshape(2, 3) == x).all() and (b == a + 1).all()
    with pytest.raises(P.ProtocolError, match="does not hold"):
        P.split(p, [("i4", 6), ("i4", 5)])
    for bad in (struct.pack("<I", P.MAX_HEADER + 1), struct.pack("<I", 3) + b"{x}",
                struct.pack("<I", 2) + b"[]"):
        os.write(w, bad)
        with pytest.raises(P.ProtocolError):
            P.receive(r, deadline=None)
        os.set_blocking(r, False)
        try:
            while os.read(r, 1 << 16):
                pass
        except BlockingIOError:
            pass
        os.set_blocking(r, True)
    for nb in (1 << 40, 1 << 31, True, -1, 101):  # refused before any payload is read (a bool is not a size)
        head = json.dumps({"type": "scores", "nbytes": nb}).encode()
        os.write(w, struct.pack("<I", len(head)) + head)
        with pytest.raises(P.Malformed, match="payload"):
            P.receive(r, deadline=None, max_payload=100)
    os.write(w, struct.pack("<I", 0xFFFFFFF0) + b"{")
    with pytest.raises(P.Malformed, match="header of 4294967280 bytes"):
        P.receive(r, deadline=None)
    os.read(r, 1)
    import time
    with pytest.raises(P.ProtocolError, match="timed out"):
        P.receive(r, deadline=time.monotonic() + 0.2)
    os.close(w)
    with pytest.raises(P.ProtocolError, match="closed"):
        P.receive(r, deadline=time.monotonic() + 5)
    os.close(r)


@pytest.mark.parametrize("T, L, s", [(1000, 128, 32), (1000, 128, 48), (100, 128, 32), (257, 64, 64), (5, 4, 1)])
def test_window_plan_covers_every_target_once(T, L, s):
    plan = window_plan(T, L, s)
    slide = np.zeros(T, int)
    plain = np.zeros(T, int)
    for st, n, f, sf, pl in zip(plan.start, plan.length, plan.first, plan.slide_first, plan.plain):
        assert 0 < n <= L and st + n <= T and f <= (sf if sf >= 0 else f)
        if sf >= 0:
            slide[st + sf:st + n] += 1
        if pl:
            plain[st:st + n] += 1
    assert (slide == 1).all() and (plain == 1).all()
    if L % s == 0:  # plain windows are sliding windows (but a ragged tail past the last one): no extra forward
        inner = plan.plain & (plan.start < max(T - (L - s), 1))
        assert (plan.slide_first[inner] >= 0).all() and (~plan.plain & (plan.slide_first < 0)).sum() == 0


def _bigram_nll_fn(vocab):
    """A fixed causal 'model': NLL of y from a hashed bigram table (depends only on x[t])."""
    g = torch.Generator().manual_seed(0)
    table = torch.log_softmax(torch.randn(vocab, vocab, generator=g), dim=-1)

    def fn(x, y):
        return -table[x, y]
    return fn, table


def test_plan_scores_match_golf_metric_on_the_untruncated_stream(tiny_data):
    V = tiny_data["vocab_size"]
    stream = load_val_tokens(tiny_data["dataset_dir"], 0, V, max_tokens=3001)
    assert len(stream) == 3002  # untruncated: no multiple of L enforced
    luts = build_byte_luts(str(tiny_data["tokenizer"]), V)
    fn, table = _bigram_nll_fn(V)
    plan = window_plan(len(stream) - 1, 64, 16)
    scores = Scores(plan)
    for w in range(len(plan)):
        s, n, f = plan.start[w], plan.length[w], plan.first[w]
        scores.put(w, (-table[stream[s:s + n], stream[s + 1:s + n + 1]]).numpy()[f:])
    nb = stream_bytes(luts, stream)
    sl = eval_sliding(fn, stream, luts, 64, 16, 8, return_nll=True)
    pl = eval_plain_ragged(fn, stream, luts, 64, 8, return_nll=True)
    assert sl.tokens == pl.tokens == 3001 and sl.bytes == pl.bytes == nb
    np.testing.assert_allclose(scores.sliding, sl.nll, rtol=1e-6)
    np.testing.assert_allclose(scores.plain, pl.nll, rtol=1e-6)
    assert bpb(scores.sliding, nb)["val_bpb"] == pytest.approx(sl.val_bpb, rel=1e-6)
    # the truncated plain eval is the ragged one minus the tail window
    tr = eval_plain(fn, load_val_tokens(tiny_data["dataset_dir"], 64, V, max_tokens=3001), luts, 64, 8)
    assert tr.tokens == 3001 // 64 * 64


def _serve_thread(fn, info):
    """golf's shipped artifact-side loop (protocol.serve) on two pipes, in a thread."""
    a_r, v_w = os.pipe()
    v_r, a_w = os.pipe()
    os.environ[P.ENV_EVAL_IN], os.environ[P.ENV_EVAL_OUT] = str(a_r), str(a_w)
    t = threading.Thread(target=P.serve, args=(info, fn), daemon=True)
    t.start()
    return t, Client(v_r, v_w, 30.0, info["vocab_size"]), (a_r, a_w, v_r, v_w)


def test_windows_run_and_audits_against_the_shipped_server(tiny_data):
    V = tiny_data["vocab_size"]
    stream = load_val_tokens(tiny_data["dataset_dir"], 0, V, max_tokens=2000)
    _, table = _bigram_nll_fn(V)

    def logp(x):  # rows (n,T) -> (n,T,V): a causal bigram model
        return table[torch.from_numpy(x.astype(np.int64))].numpy()

    t, client, fds = _serve_thread(logp, {"vocab_size": V, "eval_seq_len": 32})
    try:
        hello = client.hello([P.WINDOWS])
        assert hello["modes"] == [P.WINDOWS] and hello["eval_seq_len"] == 32 and hello["protocol"] == "golf-eval/2"
        plan = window_plan(len(stream) - 1, 32, 8)
        scores = Scores(plan)
        client.start(P.WINDOWS, 32, 8)
        run_windows(client, stream, plan, scores, 8, np.random.default_rng(0))
        rng = np.random.default_rng(1)
        needed, affordable, at = A.plan_audits(rng, plan.targets, 0.01, 1e-6, 0.1 * plan.forward_tokens(), 32)
        rep = A.AuditReport(seed=1, mode="windows", fraction=0.01, delta=1e-6, needed=needed, affordable=affordable,
                            real_tokens=plan.forward_tokens())
        A.audit_windows(client, stream, plan, scores.sliding, rep, at)  # same (stateless) server: answers agree
        client.bye()
        t.join(10)
    finally:
        for fd in fds:
            os.close(fd)
    assert scores.missing() == 0 and np.isfinite(scores.sliding).all()
    want = -table[stream[:-1], stream[1:]].numpy()
    np.testing.assert_allclose(scores.sliding, want, rtol=1e-5)
    assert needed == 1375 and rep.n == affordable == int(0.1 * plan.forward_tokens() // 32) > 0
    assert rep.agree_max <= 1e-5 and rep.lse_max <= 1e-4 and rep.audit_tokens <= 0.1 * plan.forward_tokens()


def test_audit_count_and_bound():
    assert A.audits_needed(0.01, 1e-6) == 1375 and A.bound(0.01, 1375) <= 1e-6 < A.bound(0.01, 1374)
    rng = np.random.default_rng(0)
    needed, affordable, at = A.plan_audits(rng, 10_000, 0.01, 1e-6, 64_000, 64)
    assert (needed, affordable, len(at)) == (1375, 1000, 1000) and (np.diff(at) > 0).all()


def test_outputs_are_read_without_following_links_and_with_a_cap(tmp_path):
    from golf.verifier.scoring.artifact import read_capped
    big = tmp_path / "big.f32"
    big.write_bytes(b"\0" * 4096)
    assert len(read_capped(big, 4096)) == 4096
    with pytest.raises(ValueError, match="over the 100-byte cap"):
        read_capped(big, 100)
    (tmp_path / "link.f32").symlink_to(big)
    with pytest.raises(OSError):
        read_capped(tmp_path / "link.f32", 1 << 20)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(ValueError, match="not a regular file"):
        read_capped(tmp_path / "fifo", 100)
