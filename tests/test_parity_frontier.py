"""Model parity with the 2026-04-27 record's own train_gpt.py (the `frontier` preset).

The record's script runs on CPU as a module (``tests/frontier_ref.py``: SDPA for FlashAttention-3,
segment by segment for its varlen call; a pass-through triton; the record's own eager MLP and
cross-entropy paths).  Identical weights, every gate, lane weight and scalar randomized, go into both
models through golf's explicit name map (``golf.builder.importstate.frontier_to_golf``), and the
logits are compared in fp32 with recurrence off and on, dense and document-packed.  Tolerances are
stated at each assertion; docs/parity.md ("frontier") lists the measured maxima.
"""
from __future__ import annotations

import math

import pytest
import torch
from frontier_ref import load_frontier_reference, needs_reference

from golf.builder.importstate import FRONTIER_BANKS, frontier_to_golf, golf_to_frontier
from golf.config import apply_overrides
from golf.model.gpt import GPT, count_params
from golf.presets import preset_config

pytestmark = needs_reference

# the record's run command (SPEC "What TOP adds"): the model switches that differ from its code defaults
RUN = {"SPARSE_ATTN_GATE_ENABLED": 1, "SPARSE_ATTN_GATE_SCALE": 0.5, "SMEAR_GATE_ENABLED": 1, "FUSED_CE_ENABLED": 0}
# same features (11 layers, loop 3-5 x3, lanes from 8, XSA everywhere, partial RoPE 16 of 32), small widths
SMALL = {"VOCAB_SIZE": 1024, "MODEL_DIM": 128, "NUM_HEADS": 4, "NUM_KV_HEADS": 2, "TRAIN_SEQ_LEN": 128}
GOLF_SMALL = {"model.vocab_size": 1024, "model.model_dim": 128, "model.num_heads": 4, "model.num_kv_heads": 2,
              "train.train_seq_len": 128}
TOL = 1e-4  # max |logit| difference asserted (fp32 CPU; logits reach ~|10|)


@pytest.fixture(scope="module")
def rec():
    torch.set_num_threads(1)
    return load_frontier_reference()


def record_h(rec, **env):
    """A record ``Hyperparameters`` with its defaults, overridden by env-style names."""
    h = rec.Hyperparameters()
    for k, v in {**RUN, **env}.items():
        setattr(h, k.lower(), type(getattr(rec.Hyperparameters, k.lower()))(v))
    return h


def golf_cfg(**extra):
    cfg = preset_config("frontier")
    apply_overrides(cfg, {**GOLF_SMALL, **extra})
    return cfg


@torch.no_grad()
def randomize(model, seed=0):
    """Every parameter of the record's model away from its init (banks ~ N(0, 1/fan_in) per matrix)."""
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if p.ndim >= 2 and ("bank" in name or name == "tok_emb.weight"):
            p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[-1]))
        elif "q_gain" in name:
            p.copy_(4.0 + 2.0 * torch.rand(p.shape, generator=g))
        elif "attn_gate_w" in name or "smear_gate" in name:
            p.copy_(torch.randn(p.shape, generator=g))
        elif "smear_lambda" in name:
            p.copy_(0.3 + 0.4 * torch.rand(p.shape, generator=g))
        else:  # scales, resid_mix, skip weights/gates, lane lambdas
            p.copy_(0.2 + torch.rand(p.shape, generator=g) * (2.0 if "gate" in name else 1.2) - 0.1)


@pytest.fixture(scope="module")
def pair(rec):
    """(record GPT, golf GPT) with identical randomized weights, both in eval mode (the record's eager MLP)."""
    torch.manual_seed(0)
    r = rec.GPT(record_h(rec, **SMALL)).float().eval()
    randomize(r)
    g = GPT(golf_cfg().model).eval()
    g.load_state_dict(frontier_to_golf(r.state_dict()), strict=True)
    return r, g


def test_full_size_parameter_count_and_names(rec):
    with torch.device("meta"):
        r = rec.GPT(record_h(rec))
        g = GPT(preset_config("frontier").model)
    assert sum(p.numel() for p in r.parameters()) == count_params(preset_config("frontier").model) == 35_945_671
    mapped = {k: tuple(v.shape) for k, v in frontier_to_golf(r.state_dict()).items()}
    assert mapped == {k: tuple(v.shape) for k, v in g.state_dict().items()}


def test_name_map_round_trips_and_every_tensor_is_randomized(pair):
    r, g = pair
    rs = r.state_dict()
    back = golf_to_frontier(g.state_dict(), 11)
    assert back.keys() == rs.keys()
    assert all(torch.equal(back[k], rs[k].float()) for k in rs)
    for name, t in g.state_dict().items():
        assert t.numel() == 1 or t.std() > 0.02, name
        assert not torch.all(t == 1.0) and not torch.all(t == 0.0) and not torch.all(t == 1.1), name
    with pytest.raises(ValueError, match="no kv_bank"):
        frontier_to_golf({k: v for k, v in rs.items() if k != "kv_bank"})
    assert set(FRONTIER_BANKS) <= rs.keys()


def ids_with_documents(T=96, seed=1, bos_at=(0, 17, 40, 41, 70)):
    """Two rows of random ids with BOS (1) at ``bos_at`` (documents of 17, 23, 1, 29 and 26 tokens)."""
    x = torch.randint(2, 1024, (2, T), generator=torch.Generator().manual_seed(seed))
    x[:, list(bos_at)] = 1
    return x


@pytest.mark.parametrize("recurrence", [False, True], ids=["recurrence-off", "recurrence-on"])
def test_logits_match(pair, recurrence):
    r, g = pair
    r.looping_active = recurrence
    g.set_recurrence(recurrence)
    if recurrence:  # the record's encoder/decoder index lists are golf's schedule
        assert g.encoder_layers == r.encoder_indices == [0, 1, 2, 3, 4, 5, 3, 4]
        assert g.decoder_layers == r.decoder_indices == [5, 3, 4, 5, 6, 7, 8, 9, 10]
    x = ids_with_documents()
    with torch.no_grad():
        zr, zg = r.forward_logits(x), g.logits(x)
    diff = (zr - zg).abs().max().item()
    print(f"frontier logits, recurrence {recurrence}: max |diff| {diff:.3g}")
    assert diff < TOL, f"max |logit diff| {diff:.3g} (recurrence {recurrence})"
    assert zr.abs().max() > 1.0  # a real signal


def record_cu_seqlens(rec, x, max_doc_len):
    """The record's own cu_seqlens for one packed row (its loader's helper, at the BOS positions)."""
    bos = (x[0] == 1).nonzero().flatten().tolist()
    return rec._build_cu_seqlens(bos, x.size(1), torch.device("cpu"), max_doc_len, 64)


@pytest.mark.parametrize("recurrence", [False, True], ids=["recurrence-off", "recurrence-on"])
def test_document_packed_logits_match_and_stay_inside_documents(rec, pair, recurrence):
    r, g = pair
    r.looping_active = recurrence
    g.set_recurrence(recurrence)
    x = ids_with_documents()[:1]
    cu, max_len = record_cu_seqlens(rec, x, 24)  # the 29- and 26-token documents are cut at 24
    assert cu.numel() == 64 and max_len == 24
    with torch.no_grad():
        zr = r.forward_logits(x, cu_seqlens=cu, max_seqlen=max_len)
        zg = g.logits(x, (cu, max_len))
        dense = g.logits(x)
        # uncut documents: each one alone gives the same logits (positions restart at 0 there, but RoPE is
        # relative; a cut segment would differ only by the SmearGate, which stays on inside a document)
        cu0, max0 = record_cu_seqlens(rec, x, 0)
        whole = g.logits(x, (cu0, max0))
        bounds = sorted(set(cu0.tolist()))
        alone = torch.cat([g.logits(x[:, s:e]) for s, e in zip(bounds[:-1], bounds[1:])], dim=1)
    diff = (zr - zg).abs().max().item()
    iso = (whole - alone).abs().max().item()
    print(f"frontier packed logits, recurrence {recurrence}: vs record varlen {diff:.3g}, documents alone {iso:.3g}")
    assert diff < TOL, diff
    assert iso < TOL, iso
    assert (zg - dense).abs().max() > 0.1  # the mask changes the result: documents really are cut


def test_smear_gate_never_crosses_a_bos(pair):
    _, g = pair
    x = ids_with_documents()[:1]
    y = x.clone()
    y[0, 16] = 5  # the last token of document 1 (document 2 starts with BOS at 17)
    with torch.no_grad():
        emb = {}
        for ids in (x, y):
            e = g.tok_emb(ids)
            emb[id(ids)] = g._smear(e, ids)
    assert torch.equal(emb[id(x)][0, 17:], emb[id(y)][0, 17:])
    assert not torch.equal(emb[id(x)][0, 16], emb[id(y)][0, 16])
    z = x.clone()
    z[0, 17] = 7  # no BOS at 17: the smear now reaches across
    with torch.no_grad():
        w = z.clone()
        w[0, 16] = 5
        a, b = g._smear(g.tok_emb(z), z), g._smear(g.tok_emb(w), w)
    assert not torch.equal(a[0, 17], b[0, 17])


def test_import_state_from_frontier_record_round_trips_logits(rec, tmp_path):
    """`golf import-state --from frontier-record` on a state dict saved by the record's model class (bf16
    embedding, as its training leaves it): the imported run's model computes the record's logits, and the
    names map back to the record's exactly."""
    from click.testing import CliRunner

    from golf.cli import main as cli
    from golf.trainer.checkpoint import load_final_full

    r = rec.GPT(record_h(rec, **SMALL)).float().eval()
    randomize(r, seed=5)
    with torch.no_grad():
        r.tok_emb.weight.copy_(r.tok_emb.weight.bfloat16().float())
    state = {k: (v.bfloat16() if k == "tok_emb.weight" else v) for k, v in r.state_dict().items()}
    torch.save(state, tmp_path / "final_model.pt")
    sets = [x for k, v in GOLF_SMALL.items() for x in ("--set", f"{k}={v}")]
    res = CliRunner().invoke(cli, ["import-state", "--from", "frontier-record", str(tmp_path / "final_model.pt"),
                                   "--out", str(tmp_path / "run")] + sets)
    assert res.exit_code == 0, res.output
    assert "preset frontier, recurrence on" in res.output
    cfg, sd, recurrence = load_final_full(tmp_path / "run")
    assert cfg.preset == "frontier" and recurrence is True
    g = GPT(cfg.model).eval()
    g.load_state_dict(sd, strict=True)
    back = golf_to_frontier(sd, cfg.model.num_layers)
    assert all(torch.equal(back[k], v.float()) for k, v in state.items())
    x = ids_with_documents()
    for on in (False, True):
        r.looping_active = on
        g.set_recurrence(on)
        with torch.no_grad():
            diff = (r.forward_logits(x) - g.logits(x)).abs().max().item()
        assert diff < TOL, (on, diff)
    # a full-size frontier file into the small preset is refused with the tensor named
    res = CliRunner().invoke(cli, ["import-state", "--from", "frontier-record", str(tmp_path / "final_model.pt"),
                                   "--out", str(tmp_path / "run2")])
    assert res.exit_code != 0 and ": shape (" in res.output and "in the 'frontier' model" in res.output
    torch.save({"tok_emb.weight": torch.zeros(4, 4)}, tmp_path / "other.pt")
    res = CliRunner().invoke(cli, ["import-state", "--from", "frontier-record", str(tmp_path / "other.pt"),
                                   "--out", str(tmp_path / "run3")])
    assert res.exit_code != 0 and "not a state dict of the 2026-04-27 record" in res.output
