"""The grouped packer (golf/builder/grouped.py) and LQER (golf/builder/lqer.py) on a tiny model trained by
golf's own loop on the real sample data, real Hessians, real brotli; and both in a generated train_gpt.py."""
from __future__ import annotations

import copy
import re

import numpy as np
import pytest
import torch
from test_builder import VAL_TOKENS, _run, quantized, tiny_run  # noqa: F401  (session fixtures)

from golf.builder import container, grouped, lqer
from golf.builder.build import build


def _entropy_bytes(sym: np.ndarray) -> float:
    p = np.bincount(sym.reshape(-1), minlength=256) / sym.size
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum() * sym.size / 8)


def test_rans_round_trips_and_reaches_the_order0_bound(quantized):  # noqa: F811
    qs = [t.numpy().view(np.uint8).reshape(-1) for n, t in quantized["arrays"].items() if n.endswith(".q")]
    mats = np.concatenate(qs)
    rng = np.random.default_rng(0)
    big = np.clip(np.round(rng.laplace(0, 3, 600_000)), -31, 31).astype(np.int8).view(np.uint8)
    for sym in (mats, qs[0], big, np.zeros(1, np.uint8), np.full(5000, 200, np.uint8),
                np.arange(256, dtype=np.uint8).repeat(7), mats[:12345]):
        coded = grouped.rans_encode(sym)
        assert np.array_equal(grouped.rans_decode(coded), sym)
    # close to the empirical order-0 entropy: the fixed costs are the table and 8 state bytes per lane
    assert len(grouped.rans_encode(big)) < 1.003 * _entropy_bytes(big)
    assert len(grouped.rans_encode(mats)) < 1.01 * _entropy_bytes(mats) + 200
    coded = grouped.rans_encode(mats)
    for bad in (coded[:-4], coded[:10], coded[:8] + b"\xff" * (len(coded) - 8)):
        with pytest.raises(grouped.GroupedError):
            grouped.rans_decode(bad)


def test_grouped_blob_is_bit_exact_and_smaller_than_brotli(quantized, monkeypatch):  # noqa: F811
    arrays, meta = quantized["arrays"], {"q": quantized["qmeta"]}
    plain = container.pack(arrays, meta, "brotli")
    blob = container.pack(arrays, meta, "grouped")
    assert container.read_header(blob)["compressor"] == "grouped"
    back, meta2, _ = container.unpack(blob)
    assert meta2 == meta and list(back) == list(arrays)
    assert all(back[k].dtype == v.dtype and torch.equal(back[k], v) for k, v in arrays.items())
    assert container.pack(arrays, meta, "grouped") == blob  # deterministic
    assert len(blob) < len(plain)
    # one stream per role group (the tiny model has every role), each coded by the smaller coder
    index, _ = grouped._payload_index(container.decompress(blob[container.HEADER.size:], "grouped"))
    groups = [g[0] for g in grouped._group_plan(index)]
    assert set(groups) == {"embed", "attn.c_q", "attn.c_k", "attn.c_v", "attn.proj", "mlp.fc", "mlp.proj"}
    for only in (("rans",), ("brotli",)):
        forced = grouped.grouped_encode(container.decompress(blob[container.HEADER.size:], "grouped"),
                                        lambda b: container.compress(b, "brotli"), coders=only)
        assert len(forced) >= len(blob) - container.HEADER.size
    # rows permuted + stored row-major: still bit-exact (the permutation travels with the group)
    roles = tuple((p, g, True, False, c) for p, g, _, _, c in grouped.TENSOR_ROLES)
    monkeypatch.setattr(grouped, "TENSOR_ROLES", roles)
    back, _, _ = container.unpack(container.pack(arrays, meta, "grouped"))
    assert all(torch.equal(back[k], v) for k, v in arrays.items())


def test_corrupt_grouped_blob_is_a_container_error(quantized):  # noqa: F811
    blob = container.pack(quantized["arrays"], {"q": quantized["qmeta"]}, "grouped")
    body = bytearray(blob)
    body[-50] ^= 0x55  # inside the last group stream
    for bad in (blob[:-100], bytes(body), blob[:container.HEADER.size + 6]):
        with pytest.raises(container.ContainerError):
            container.unpack(bad)


def test_lqer_corrects_the_worst_tensors(quantized):  # noqa: F811
    state = {k: v.detach().cpu() for k, v in quantized["model"].state_dict().items()}
    arrays, qmeta, info = (copy.deepcopy(quantized[k]) for k in ("arrays", "qmeta", "info"))
    q = copy.deepcopy(quantized["cfg"].quant)
    q.lqer_enabled, q.lqer_top_k, q.lqer_rank = True, 2, 4
    before = container.dequantize(arrays, {"q": qmeta})
    errs = {n: float((state[n].float() - before[n].float()).norm()) for n, (k, _) in qmeta.items() if k == "q"}
    top = lqer.apply_lqer(state, arrays, qmeta, info, q)
    assert top == sorted(errs, key=lambda n: -errs[n])[:2]  # the two largest measured errors
    assert {n for n, (k, _) in qmeta.items() if k == "ql"} == set(top)
    assert arrays[top[0] + ".lqa"].abs().max() <= 2 and arrays[top[0] + ".lqb"].min() >= -8
    assert arrays[top[0] + ".lqb"].max() <= 7 and arrays[top[0] + ".lqa"].shape[1] == 4
    blob = container.pack(arrays, {"q": qmeta}, "grouped")  # the factors travel in the lqer group
    back, meta2, _ = container.unpack(blob)
    after = container.dequantize(back, meta2)
    for n in errs:
        e = float((state[n].float() - after[n].float()).norm())
        if n in top:
            assert e < 0.99 * errs[n] and abs(e - info[n]["lqer_error_after"]) < 1e-3 * errs[n]
        else:
            assert e == errs[n]


def test_artifact_with_lqer_and_grouped_scores_what_the_build_measured(tiny_run, tiny_data, tmp_path):  # noqa: F811
    out = tmp_path / "art"
    report = build(tiny_run, tiny_data["data_dir"], out, compressor="grouped", lqer=True, val_max_tokens=VAL_TOKENS,
                   device="cpu", progress=False, log=lambda *a: None)
    assert report["compressor"] == "grouped" and report["quant"]["lqer_enabled"]
    corrected = [n for n, r in report["tensors"].items() if r["method"].endswith("+lqer")]
    assert len(corrected) == report["quant"]["lqer_top_k"]
    proc, work = _run(out, tmp_path, DATA_DIR=tiny_data["data_dir"], VAL_MAX_TOKENS=VAL_TOKENS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rt = re.search(r"final_int6_roundtrip val_loss:(\S+) val_bpb:(\S+)", proc.stdout)
    assert float(rt.group(2)) == pytest.approx(report["post_quant"]["roundtrip"]["val_bpb"], abs=1e-6)
    assert f"Serialized model int6+grouped: {report['blob_bytes']} bytes" in proc.stdout
