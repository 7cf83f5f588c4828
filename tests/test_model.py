"""golf.model.gpt: shapes, parameter counts, schedule, causality, numerics, feature toggles."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from golf.config import ConfigError, ModelConfig
from golf.model import gpt as gm
from golf.model.gpt import CONTROL_PATTERNS, GPT, attend, count_params, exclusive_self_attention
from golf.presets import preset_config


def tiny(**over) -> ModelConfig:
    return dataclasses.replace(preset_config("tiny").model, **over)


def randomize(model: GPT, std: float = 0.05, seed: int = 0) -> GPT:
    """Perturb every parameter so zero-initialised projections carry signal."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in model.named_parameters():
            p.add_(torch.randn(p.shape, generator=g) * std)
    return model


def make(cfg: ModelConfig, recurrence: bool = False, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    m = randomize(GPT(cfg), seed=seed)
    m.set_recurrence(recurrence)
    return m.eval()


def batch(cfg: ModelConfig, B: int = 2, T: int = 32, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, cfg.vocab_size, (B, T), generator=g)
    y = torch.randint(0, cfg.vocab_size, (B, T), generator=g)
    return x, y


def formula_params(c: ModelConfig) -> int:
    """Parameter count from the architecture description (SPEC §3.2/§3.3), independent of GPT."""
    d, hd = c.model_dim, c.model_dim // c.num_heads
    q, kv, hidden = c.num_heads * hd, c.num_kv_heads * hd, int(c.mlp_mult * d)
    block = d * q + 2 * d * kv + q * d + 2 * d * hidden + 2 * d + c.num_heads
    block += 2 * d if c.resid_mix else 0
    total = c.num_layers * block + c.vocab_size * d
    total += 0 if c.tie_embeddings else c.vocab_size * d
    virtual = c.num_layers + (c.recur_end - c.recur_start + 1) * c.recur_loops if c.recur_start >= 0 else c.num_layers
    pairs = (c.num_layers if c.skip_count_physical else virtual) // 2 if c.skip_weights else 0
    total += pairs * d * (2 if c.skip_gates else 1)
    if c.parallel_start_layer >= 0:
        total += 1 if c.parallel_mode == "merge" else 6 * (c.num_layers - c.parallel_start_layer)
    if c.ve_enabled:
        total += c.vocab_size * c.ve_dim + c.ve_dim * kv + 1 + len(c.ve_layers)
    return total


# -- sizes -----------------------------------------------------------------------------------

def test_record_preset_has_the_logged_parameter_count():
    cfg = preset_config("sp4096-record").model
    assert count_params(cfg) == 34_401_372  # SPEC §3.1 / §7 (log)
    assert formula_params(cfg) == 34_401_372


def test_seed_preset_count_matches_the_formula_and_builds_on_meta():
    cfg = preset_config("seed").model
    n = count_params(cfg)
    assert n == formula_params(cfg)
    with torch.device("meta"):
        m = GPT(cfg)
    assert all(p.is_meta for p in m.parameters())
    assert sum(p.numel() for p in m.parameters()) == n
    assert m.skip_weights.shape == (8, 512)  # 17 virtual layers -> 8 skip pairs


@pytest.mark.parametrize("over", [{}, {"tie_embeddings": False}, {"parallel_mode": "route"},
                                  {"ve_enabled": True, "ve_layers": (4, 5), "resid_mix": True},
                                  {"skip_gates": False}, {"skip_weights": False, "parallel_start_layer": -1}])
def test_count_params_matches_a_real_model(over):
    cfg = tiny(**over)
    real = sum(p.numel() for p in GPT(cfg).parameters())
    assert count_params(cfg) == real == formula_params(cfg)


# -- schedule --------------------------------------------------------------------------------

def test_set_recurrence_rebuilds_the_virtual_layer_list_seed():
    with torch.device("meta"):
        m = GPT(preset_config("seed").model)
    assert not m.recurrence_active and m.virtual_layers == list(range(11))
    assert m.encoder_layers == [0, 1, 2, 3, 4] and m.decoder_layers == [5, 6, 7, 8, 9, 10]
    assert m.virtual_layers[m.lane_split] == 7 and m.lane_split == 7
    m.set_recurrence(True)
    assert m.recurrence_active and len(m.virtual_layers) == 17
    assert m.encoder_layers == [0, 1, 2, 3, 4, 5, 3, 4]
    assert m.decoder_layers == [5, 3, 4, 5, 6, 7, 8, 9, 10]
    assert m.lane_split == 8 + 5 and m.virtual_layers[m.lane_split:] == [7, 8, 9, 10]
    m.set_recurrence(False)
    assert m.virtual_layers == list(range(11))


def test_set_recurrence_record_schedule():
    with torch.device("meta"):
        m = GPT(preset_config("sp4096-record").model)
    m.recurrence_active = True
    assert m.virtual_layers == [0, 1, 2, 3, 4, 5, 4, 5, 6, 7, 8, 9, 10]
    assert m.encoder_layers == [0, 1, 2, 3, 4, 5] and m.decoder_layers == [4, 5, 6, 7, 8, 9, 10]
    assert m.skip_weights.shape == (5, 512) and m.skip_gates.shape == (5, 512)


def test_recurrence_switch_is_a_noop_without_recurrence_config():
    m = GPT(tiny(recur_start=-1))
    m.set_recurrence(True)
    assert not m.recurrence_active and m.virtual_layers == list(range(6))


def test_sp4k_quirk_skip_rows_after_lane_split_get_no_gradient():
    # A narrow copy of the record's 11-layer schedule: effective skips with recurrence are
    # decoder positions 0..3 (phys 4<-5, 5<-4, 6<-3, 7<-2, SPEC §3.3); row 4 lands on the dead stream.
    rec = preset_config("sp4096-record").model
    cfg = dataclasses.replace(rec, vocab_size=64, model_dim=32, num_heads=2, num_kv_heads=1, rope_dims=4,
                              ve_dim=8)
    x, y = batch(cfg, B=1, T=8)
    for recurrence, live in ((True, [0, 1, 2, 3]), (False, [0, 1, 2])):
        for quirk in (True, False):
            m = make(dataclasses.replace(cfg, parallel_skip_quirk=quirk), recurrence)
            m(x, y).backward()
            row_live = [bool(r.abs().sum() > 0) for r in m.skip_weights.grad]
            want = [i in live for i in range(5)] if quirk else [True] * 5
            assert row_live == want, (recurrence, quirk, row_live)


# -- numerics --------------------------------------------------------------------------------

def test_tiny_forward_backward_fp32_loss_is_log_vocab_at_init():
    cfg = tiny()
    torch.manual_seed(0)
    m = GPT(cfg)
    m.set_recurrence(True)
    x, y = batch(cfg, B=4, T=64)
    loss = m(x, y)
    assert loss.dtype == torch.float32 and loss.ndim == 0
    assert abs(loss.item() - math.log(cfg.vocab_size)) < 0.05
    loss.backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert m.tok_emb.weight.grad.abs().sum() > 0


def test_init_follows_spec():
    m = GPT(preset_config("tiny").model)
    b = m.blocks[0]
    assert b.attn.proj.weight.abs().sum() == 0 and b.mlp.proj.weight.abs().sum() == 0
    w = b.mlp.fc.weight  # 256 x 64, both dims >= 64 -> orthogonal columns
    torch.testing.assert_close(w.T @ w, torch.eye(64), atol=1e-4, rtol=0)
    assert abs(m.tok_emb.weight.std().item() - 0.005) < 5e-4
    assert torch.all(b.attn.q_gain == 5.0) and torch.all(m.skip_weights == 1) and torch.all(m.skip_gates == 0)
    assert m.lane_merge.item() == 0.5


@pytest.mark.parametrize("recurrence", [False, True])
@pytest.mark.parametrize("extras", [False, True])
def test_causality(recurrence, extras):
    over = dict(xsa_last_n=6, ln_scale=True, resid_mix=True, ve_enabled=True, ve_layers=(1, 5)) if extras else {}
    cfg = tiny(**over)
    m = make(cfg, recurrence)
    assert m.lane_split < len(m.virtual_layers) and m.skip_weights is not None
    x, y = batch(cfg, B=2, T=24)
    t = 13
    x2 = x.clone()
    x2[:, t] = (x2[:, t] + 7) % cfg.vocab_size
    with torch.no_grad():
        a, b = m.per_token_nll(x, y), m.per_token_nll(x2, y)
    torch.testing.assert_close(a[:, :t], b[:, :t], rtol=0, atol=1e-5)
    assert (a[:, t:] - b[:, t:]).abs().max() > 1e-3  # the change is visible from position t on


def test_per_token_nll_mean_equals_forward_loss():
    cfg = tiny()
    m = make(cfg, True)
    x, y = batch(cfg)
    with torch.no_grad():
        nll = m.per_token_nll(x, y)
        loss = m(x, y)
    assert nll.shape == x.shape and nll.dtype == torch.float32
    torch.testing.assert_close(nll.mean(), loss, rtol=1e-6, atol=1e-6)
    ref = F.cross_entropy(m(x).reshape(-1, cfg.vocab_size), y.reshape(-1), reduction="none").view_as(nll)
    torch.testing.assert_close(nll, ref)


def test_logits_obey_the_softcap():
    cap = 2.0
    m = make(tiny(logit_softcap=cap))
    raw_m = make(tiny(logit_softcap=0.0))
    raw_m.load_state_dict(m.state_dict())
    with torch.no_grad():
        m.tok_emb.weight.mul_(40.0)
        raw_m.tok_emb.weight.mul_(40.0)
        x, _ = batch(m.cfg)
        z, raw = m(x), raw_m(x)
    assert z.dtype == torch.float32 and z.shape == (*x.shape, m.cfg.vocab_size)
    assert raw.abs().max() > 3 * cap  # the cap is actually exercised
    assert z.abs().max() <= cap
    torch.testing.assert_close(z, cap * torch.tanh(raw / cap))


def test_sdpa_attention_matches_naive_reference():
    g = torch.Generator().manual_seed(3)
    B, T, H, Hkv, D = 2, 9, 4, 2, 8
    q, k, v = (torch.randn(B, T, h, D, generator=g) for h in (H, Hkv, Hkv))
    y = attend(q, k, v)
    kk, vv = k.repeat_interleave(H // Hkv, dim=2), v.repeat_interleave(H // Hkv, dim=2)
    s = torch.einsum("bthd,bshd->bhts", q, kk) / math.sqrt(D)
    s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    ref = torch.einsum("bhts,bshd->bthd", s.softmax(-1), vv)
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)


def test_xsa_removes_the_own_value_component():
    g = torch.Generator().manual_seed(4)
    y, v = torch.randn(2, 5, 4, 8, generator=g), torch.randn(2, 5, 2, 8, generator=g)
    out = exclusive_self_attention(y, v)
    vhat = F.normalize(v, dim=-1).repeat_interleave(2, dim=2)
    assert (out * vhat).sum(-1).abs().max() < 1e-5
    torch.testing.assert_close(out - y, -(y * vhat).sum(-1, keepdim=True) * vhat)


def test_rope_rotates_only_the_first_rope_dims():
    cos, sin = gm.rope_tables(6, 4, 10000.0, "cpu")
    x = torch.randn(1, 6, 2, 16)
    r = gm.apply_rope(x, cos, sin)
    torch.testing.assert_close(r[..., 4:], x[..., 4:])
    torch.testing.assert_close(r[:, 0], x[:, 0])  # position 0 is not rotated
    torch.testing.assert_close(r[..., :4].norm(dim=-1), x[..., :4].norm(dim=-1))
    # pair (1, 3) at position 2 turns by -2 * 10000^(-2/4) rad (the SP4096 record's direction)
    ang = 2 * 10000.0 ** -0.5
    x1, x3 = x[0, 2, 0, 1], x[0, 2, 0, 3]
    torch.testing.assert_close(r[0, 2, 0, 1], x1 * math.cos(ang) + x3 * math.sin(ang))
    torch.testing.assert_close(r[0, 2, 0, 3], x3 * math.cos(ang) - x1 * math.sin(ang))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_runs_and_tracks_fp32(dtype):
    cfg = tiny(xsa_last_n=2, ve_enabled=True, ve_layers=(5,))
    m = make(cfg, True)
    x, y = batch(cfg)
    with torch.no_grad():
        ref = m(x, y)
        with torch.autocast("cpu", dtype=dtype):
            low = m(x, y)
            nll = m.per_token_nll(x, y)
    assert low.dtype == torch.float32 and nll.dtype == torch.float32
    assert abs(low.item() - ref.item()) < 0.05


# -- parameter groups ------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["seed", "sp4096-record", "tiny"])
def test_param_groups_partition_all_parameters(name):
    with torch.device("meta"):
        m = GPT(preset_config(name).model)
    groups = m.param_groups()
    assert set(groups) == {"matrix", "embed", "scalar"}
    ids = [id(p) for items in groups.values() for _, p in items]
    assert len(ids) == len(set(ids)) == len(list(m.parameters()))
    assert all(p.ndim == 2 for _, p in groups["matrix"])
    for n, _ in groups["matrix"]:
        assert not any(c in n for c in CONTROL_PATTERNS)
    for n, _ in m.named_parameters():
        if any(c in n for c in CONTROL_PATTERNS):
            assert n in [k for k, _ in groups["scalar"]]
    if name == "sp4096-record":
        assert len(groups["matrix"]) == 66 + 1  # SPEC §4.1: 66 block matrices + VE projection
        assert sorted(n for n, _ in groups["embed"]) == ["tok_emb.weight", "ve_shared.embed.weight"]


def test_parameter_names_are_plain():
    with torch.device("meta"):
        m = GPT(preset_config("sp4096-record").model)
    names = set(n for n, _ in m.named_parameters())
    for want in ("tok_emb.weight", "blocks.0.attn.c_q.weight", "blocks.0.attn.c_k.weight", "blocks.0.attn.c_v.weight",
                 "blocks.0.attn.proj.weight", "blocks.0.attn.q_gain", "blocks.10.mlp.fc.weight",
                 "blocks.10.mlp.proj.weight", "blocks.3.attn_scale", "blocks.3.mlp_scale", "blocks.3.resid_mix",
                 "skip_weights", "skip_gates", "lane_merge", "ve_shared.embed.weight", "ve_shared.proj.weight",
                 "ve_shared.scale", "ve_layer_scales"):
        assert want in names, want
    assert not list(m.buffers())


# -- optional extras -------------------------------------------------------------------------

def _same_state_outputs(cfg_a, cfg_b, recurrence=True):
    a = make(cfg_a, recurrence)
    b = make(cfg_b, recurrence)
    b.load_state_dict(a.state_dict(), strict=False)
    x, _ = batch(cfg_a)
    with torch.no_grad():
        return a(x), b(x), a, b


@pytest.mark.parametrize("field,value", [("xsa_last_n", 6), ("ln_scale", True), ("parallel_skip_quirk", True),
                                         ("leaky_slope", 0.0)])
def test_parameter_free_extras_change_the_function(field, value):
    base = tiny()
    za, zb, _, b = _same_state_outputs(base, dataclasses.replace(base, **{field: value}))
    assert (za - zb).abs().max() > 1e-4
    assert sum(p.numel() for p in b.parameters()) == count_params(base)


def test_xsa_last_n_selects_the_last_layers():
    m = GPT(tiny(xsa_last_n=2))
    assert [b.attn.xsa for b in m.blocks] == [False] * 4 + [True] * 2


def test_resid_mix_is_identity_at_init_and_learns_x0():
    base = tiny()
    za, zb, _, b = _same_state_outputs(base, dataclasses.replace(base, resid_mix=True))
    assert b.blocks[0].resid_mix.shape == (2, base.model_dim)
    with torch.no_grad():
        for blk in b.blocks:
            blk.resid_mix.copy_(torch.stack((torch.ones(base.model_dim), torch.zeros(base.model_dim))))
        x, _ = batch(base)
        torch.testing.assert_close(b(x), za)
        b.blocks[2].resid_mix[1].fill_(0.5)
        assert (b(x) - za).abs().max() > 1e-4


def test_value_embeddings_toggle():
    base = tiny()
    cfg = dataclasses.replace(base, ve_enabled=True, ve_dim=16, ve_layers=(3, 5))
    za, _, _, b = _same_state_outputs(base, cfg)
    assert b.ve_shared.embed.weight.shape == (base.vocab_size, 16)
    assert b.ve_shared.proj.weight.shape == (base.num_kv_heads * base.head_dim, 16)
    assert b.ve_layer_scales.shape == (2,)
    x, y = batch(base)
    with torch.no_grad():
        b.ve_shared.scale.zero_()
        torch.testing.assert_close(b(x), za)
        b.ve_shared.scale.fill_(0.5)
        assert (b(x) - za).abs().max() > 1e-4
    b.train()
    b(x, y).backward()
    assert b.ve_shared.proj.weight.grad.abs().sum() > 0 and b.ve_layer_scales.grad.abs().min() > 0
    assert ("ve_shared.proj.weight", b.ve_shared.proj.weight) in b.param_groups()["matrix"]


def test_untied_head_toggle():
    base = tiny()
    za, zb, a, b = _same_state_outputs(base, dataclasses.replace(base, tie_embeddings=False))
    assert b.lm_head is not None and a.lm_head is None
    assert "lm_head.weight" in [n for n, _ in b.param_groups()["embed"]]
    with torch.no_grad():
        b.lm_head.weight.copy_(b.tok_emb.weight)
        x, _ = batch(base)
        torch.testing.assert_close(b(x), za)
    assert GPT(dataclasses.replace(base, tie_embeddings=False)).lm_head.weight.abs().sum() == 0  # zero init


def test_route_mode_lanes():
    cfg = tiny(parallel_mode="route")
    m = make(cfg, True)
    assert m.lane_merge is None
    assert [b.lane_route is not None for b in m.blocks] == [False] * 4 + [True] * 2
    assert torch.allclose(GPT(cfg).blocks[5].lane_route, torch.tensor([[1.1, 1.0, 1.0]] * 2))
    x, y = batch(cfg)
    m.train()
    m(x, y).backward()
    assert m.blocks[4].lane_route.grad.abs().min() > 0


def test_lanes_and_skips_can_be_switched_off():
    for over in ({"parallel_start_layer": -1}, {"skip_weights": False}, {"skip_gates": False}, {"recur_start": -1}):
        cfg = tiny(**over)
        m = make(cfg, True)
        x, y = batch(cfg)
        loss = m(x, y)
        assert torch.isfinite(loss)
    assert GPT(tiny(parallel_start_layer=-1)).lane_merge is None
    assert GPT(tiny(skip_weights=False)).skip_weights is None
    assert GPT(tiny(skip_gates=False)).skip_gates is None


def test_recurrence_changes_the_function_with_shared_weights():
    cfg = tiny()
    m = make(cfg)
    x, _ = batch(cfg)
    with torch.no_grad():
        off = m(x)
        m.set_recurrence(True)
        on = m(x)
    assert (off - on).abs().max() > 1e-4
    assert count_params(cfg) == sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("over,key", [({"num_kv_heads": 3}, "num_kv_heads"), ({"rope_dims": 5}, "rope_dims"),
                                      ({"recur_end": 9}, "recur_start"), ({"parallel_mode": "x"}, "parallel_mode"),
                                      ({"ve_enabled": True, "ve_layers": ()}, "ve_layers"),
                                      ({"ve_enabled": True, "ve_layers": (6,)}, "ve_layers"),
                                      ({"recur_loops": 2, "parallel_start_layer": 3}, "parallel_start_layer")])
def test_bad_configs_name_the_field(over, key):
    with pytest.raises(ConfigError, match=f"model.{key}"):
        GPT(tiny(**over))
