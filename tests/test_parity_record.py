"""Parity with the 2026-04-04 SP4096 record's own train_gpt.py (the test oracle in ../shared/reference/).

The record's script is an lzma+base85 exec wrapper; the test decodes it and loads its source as
a module (without running ``main()``), with SDPA standing in for FlashAttention-3.  Identical
weights (every learned scalar, gain and skip weight randomized) go into both models through
golf's explicit record name map, then logits, one optimizer step, the schedule and BPB are
compared in fp32 on CPU.  The tolerances are stated next to each assertion; docs/parity.md
lists the measured differences and where golf differs on purpose.
"""
from __future__ import annotations

import ast
import base64
import lzma
import math
import os
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from golf.builder.importstate import record_to_golf
from golf.metric import build_byte_luts, eval_plain, eval_sliding, model_nll_fn
from golf.model.gpt import GPT, count_params
from golf.presets import preset_config
from golf.trainer import schedule
from golf.trainer.ema import EMA
from golf.trainer.muon import zeropower_ns5
from golf.trainer.optim import Optimizers

REPO = Path(__file__).resolve().parents[1]


def record_script() -> Path | None:
    """The record's train_gpt.py: $GOLF_RECORD_SCRIPT, else <repo>/../shared/reference/."""
    env = os.environ.get("GOLF_RECORD_SCRIPT")
    for p in ([Path(env)] if env else []) + [REPO.parent / "shared" / "reference" / "sp4096_record_train_gpt.py"]:
        if p.is_file():
            return p
    return None


SCRIPT = record_script()
pytestmark = pytest.mark.skipif(SCRIPT is None, reason="record script not found (set GOLF_RECORD_SCRIPT)")

# A record-shaped model small enough for CPU: the record's 11 layers, recurrence 4-5, lanes from 7,
# value embeddings on 9-10, XSA everywhere, ln_scale, skip gates; narrower and a 1024 vocab.
SMALL = {"VOCAB_SIZE": 1024, "MODEL_DIM": 128, "EMBEDDING_DIM": 128, "NUM_HEADS": 4, "NUM_KV_HEADS": 2,
         "VE_DIM": 32, "TRAIN_SEQ_LEN": 128, "EVAL_SEQ_LEN": 128}
GOLF_SMALL = {"model.vocab_size": 1024, "model.model_dim": 128, "model.num_heads": 4, "model.num_kv_heads": 2,
              "model.ve_dim": 32, "train.train_seq_len": 128, "eval.eval_seq_len": 128}


def decode_record_source(path: Path) -> str:
    """The Python source inside the record's ``exec(lzma.decompress(b85decode("...")))`` wrapper."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "b85decode":
            return lzma.decompress(base64.b85decode(ast.literal_eval(node.args[0]))).decode("utf-8")
    raise AssertionError(f"{path}: no b85decode(...) payload found")


def _sdpa_flash_attn(q, k, v, causal=True):
    """FlashAttention-3's call on [B, T, H, D] tensors with GQA, computed by SDPA."""
    y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                       is_causal=causal, enable_gqa=True)
    return y.transpose(1, 2)


def load_record_module(path: Path) -> types.ModuleType:
    """The record's script as a module (flash_attn_interface replaced by SDPA; main() not run)."""
    stand_in = types.ModuleType("flash_attn_interface")
    stand_in.flash_attn_func = _sdpa_flash_attn
    saved = sys.modules.get("flash_attn_interface")
    sys.modules["flash_attn_interface"] = stand_in
    try:
        mod = types.ModuleType("sp4096_record")
        mod.__file__ = str(path)
        exec(compile(decode_record_source(path), str(path), "exec"), mod.__dict__)
    finally:
        if saved is None:
            sys.modules.pop("flash_attn_interface", None)
        else:
            sys.modules["flash_attn_interface"] = saved
    return mod


@pytest.fixture(scope="module")
def rec():
    return load_record_module(SCRIPT)


def record_h(rec, **env):
    """A record ``Hyperparameters`` object with its defaults, overridden by env-style names."""
    h = rec.Hyperparameters()
    for k, v in env.items():
        setattr(h, k.lower(), type(getattr(rec.Hyperparameters, k.lower()))(v))
    return h


def golf_cfg(**extra):
    cfg = preset_config("sp4096-record")
    from golf.config import apply_overrides
    apply_overrides(cfg, {**GOLF_SMALL, **extra})
    return cfg


@torch.no_grad()
def randomize(model, seed=0):
    """Every parameter away from its init: matrices ~ N(0, 1/fan_in), gains/scales/mixes/gates spread."""
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if p.ndim == 2 and "skip" not in name and "resid_mix" not in name:
            p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[1]))
        elif "q_gain" in name:
            p.copy_(4.0 + 2.0 * torch.rand(p.shape, generator=g))
        else:  # scales, mixes, skip weights/gates, lane_merge, ve scales
            p.copy_(0.2 + torch.rand(p.shape, generator=g) * (1.2 if "gate" not in name else 2.0) - 0.1)


@pytest.fixture(scope="module")
def pair(rec):
    """(record GPT, golf GPT) holding identical randomized weights."""
    torch.manual_seed(0)
    h = record_h(rec, **SMALL)
    r = rec.GPT(h).float()
    randomize(r)
    g = GPT(golf_cfg().model)
    state = record_to_golf(r.state_dict())
    g.load_state_dict(state, strict=True)
    return h, r, g


def test_decoded_script_is_the_record(rec):
    assert SCRIPT.stat().st_size == 24584  # byte for byte as published (SOURCES.md)
    src = decode_record_source(SCRIPT)
    assert "class GPT(nn.Module)" in src and "def gptq_quantize_weight" in src
    # the full-size record and golf's preset: same parameter count, same tensor names and shapes after the map
    h = rec.Hyperparameters()
    with torch.device("meta"):
        r = rec.GPT(h)
    assert sum(p.numel() for p in r.parameters()) == count_params(preset_config("sp4096-record").model) == 34_401_372
    with torch.device("meta"):
        g = GPT(preset_config("sp4096-record").model)
    mapped = {k: tuple(v.shape) for k, v in record_to_golf(r.state_dict()).items()}
    assert mapped == {k: tuple(v.shape) for k, v in g.state_dict().items()}


def test_name_map_is_identity_but_value_embedding_scales(pair):
    _, r, g = pair
    rs, gs = r.state_dict(), g.state_dict()
    renamed = {"ve_layer_scales.0": ("ve_layer_scales", 0), "ve_layer_scales.1": ("ve_layer_scales", 1)}
    for name, t in rs.items():
        gname, idx = renamed.get(name, (name, None))
        want = gs[gname] if idx is None else gs[gname][idx:idx + 1]
        assert torch.equal(t.float(), want), name
    # every learned scalar/gain/skip weight was randomized, none left at its init
    for name, t in gs.items():
        if t.numel() > 1 and (t.ndim < 2 or "skip" in name or "resid_mix" in name):
            assert t.std() > 0.05, name
        assert not torch.all(t == 1.0) and not torch.all(t == 0.0) and not torch.all(t == 0.5), name


@pytest.mark.parametrize("recurrence", [False, True])
def test_logits_match(pair, recurrence):
    _, r, g = pair
    x = torch.randint(0, 1024, (2, 96), generator=torch.Generator().manual_seed(1))
    r.set_recurrence_active(recurrence)
    g.set_recurrence(recurrence)
    with torch.no_grad():
        zr, zg = r.forward_logits(x), g.logits(x)
    diff = (zr - zg).abs().max().item()
    assert diff < 1e-4, f"max |logit diff| {diff:.3g} (recurrence {recurrence})"
    assert zr.abs().max() > 1.0  # a real signal, not two near-zero outputs


def test_newton_schulz_bf16_matches_bit_for_bit(rec):
    G = torch.randn(96, 160, generator=torch.Generator().manual_seed(2))
    with torch.compiler.set_stance("force_eager"):
        want = rec.zeropower_via_newtonschulz5(G, steps=5)
    for shape_g in (G, G.T.contiguous()):
        with torch.compiler.set_stance("force_eager"):
            want = rec.zeropower_via_newtonschulz5(shape_g, steps=5)
        got = zeropower_ns5(shape_g, steps=5, dtype=torch.bfloat16)
        assert got.dtype == torch.bfloat16 and torch.equal(got, want)


def test_one_optimizer_step_matches(rec):
    """Two full steps of both optimizer sets (Muon + AdamW embed + AdamW scalar) with the momentum
    ramp and LR scale applied, fed the same clipped gradients (the record's, mapped to golf's
    names; the gradients themselves agree to ~1e-6, see the assertion); Muon in bf16 as the
    record computes it."""
    h = record_h(rec, **SMALL)
    r = rec.GPT(h).float()
    randomize(r, seed=3)
    g = GPT(golf_cfg().model)
    g.load_state_dict(record_to_golf(r.state_dict()))
    before = {k: v.clone() for k, v in g.state_dict().items()}
    r_opt = rec.Optimizers(h, r)
    cfg = golf_cfg()
    g_opt = Optimizers(g, cfg.train)
    g_opt.muon.ns_dtype = torch.bfloat16
    gen = torch.Generator().manual_seed(4)
    step, lr_scale = 700, 0.8
    mom = schedule.muon_momentum(step, cfg.train.muon_momentum, cfg.train.muon_momentum_warmup_start,
                                 cfg.train.muon_momentum_warmup_steps)
    grad_diff = 0.0
    for _ in range(2):  # the second step uses the momentum buffers and Adam moments of the first
        x, y = torch.randint(0, 1024, (2, 2, 64), generator=gen)
        for model in (r, g):
            model.zero_grad(set_to_none=True)
            model(x, y).backward()
        own = {n: p.grad.clone() for n, p in g.named_parameters()}
        torch.nn.utils.clip_grad_norm_(r.parameters(), h.grad_clip_norm)
        grads = record_to_golf({n: p.grad for n, p in r.named_parameters()})
        clip = min(1.0, cfg.train.grad_clip_norm / (torch.norm(torch.stack([v.norm() for v in own.values()])) + 1e-6))
        grad_diff = max(grad_diff, max((grads[n] - clip * own[n]).abs().max().item() for n in own))
        for n, p in g.named_parameters():
            p.grad = grads[n].clone()
        for group in r_opt.optimizer_muon.param_groups:
            group["momentum"] = mom
        for opt in r_opt:
            for group in opt.param_groups:
                group["lr"] = group["base_lr"] * lr_scale
        g_opt.set_schedule(lr_scale, mom)
        with torch.compiler.set_stance("force_eager"):
            r_opt.step()
        g_opt.step()
    assert grad_diff < 1e-5, grad_diff  # golf's own (clipped) gradients vs the record's
    rs, gs = record_to_golf(r.state_dict()), g.state_dict()
    worst = {}
    for group, items in g.param_groups().items():
        worst[group] = max((rs[n] - gs[n]).abs().max().item() for n, _ in items)
        assert max((before[n] - gs[n]).abs().max().item() for n, _ in items) > 1e-3, group  # the step moved it
    # stated tolerance: 1e-6 for every group (fused vs foreach AdamW kernels may round differently)
    assert max(worst.values()) < 1e-6, worst


def _record_schedule(h):
    """The record's training_frac / lr_mul (nested in train_model), its momentum ramp (in step_fn)
    and its EMA update, taken from its source and evaluated with ``h``: the oracle, not a copy in golf."""
    tree = ast.parse(decode_record_source(SCRIPT))
    train_model = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "train_model")
    funcs = [n for n in train_model.body if isinstance(n, ast.FunctionDef) and n.name in ("training_frac", "lr_mul")]
    step_fn = next(n for n in train_model.body if isinstance(n, ast.FunctionDef) and n.name == "step_fn")
    mom = [n for n in step_fn.body if isinstance(n, ast.Assign)
           and getattr(n.targets[0], "id", "") in ("frac", "muon_momentum")]
    ema = next(n for n in ast.walk(train_model) if isinstance(n, ast.With) and "ema_state" in ast.unparse(n))
    src = "\n".join(ast.unparse(f) for f in funcs)
    src += "\ndef momentum(step):\n" + textwrap.indent("\n".join(ast.unparse(n) for n in mom), "    ")
    src += "\n    return muon_momentum\n"
    src += "def ema_update(base_model, ema_state, ema_decay):\n" + textwrap.indent(ast.unparse(ema), "    ") + "\n"
    cap = 1000.0 * h.max_wallclock_seconds if h.max_wallclock_seconds > 0 else None
    if cap is not None and h.gptq_enabled:
        cap -= h.gptq_reserve_seconds * 1000.0
    ns = {"h": h, "torch": torch, "max_wallclock_ms": cap}
    exec(compile(src, "record-schedule", "exec"), ns)
    return ns


@pytest.mark.parametrize("env", [{}, {"MAX_WALLCLOCK_SECONDS": 120.0, "ITERATIONS": 500},
                                 {"MAX_WALLCLOCK_SECONDS": 0.0, "ITERATIONS": 900}],
                         ids=["record-defaults", "capped-120s", "uncapped"])
def test_schedule_matches(rec, env):
    h = record_h(rec, **env)
    ns = _record_schedule(h)
    cfg = preset_config("sp4096-record")
    from golf.config import apply_overrides
    apply_overrides(cfg, {"train.max_wallclock_seconds": h.max_wallclock_seconds, "train.iterations": h.iterations})
    t = cfg.train
    cap = schedule.effective_cap_ms(t)
    assert cap == (ns["max_wallclock_ms"] or 0.0)
    sched = schedule.schedule_from_config(t)
    # a run whose time runs ahead of its steps (the cap binds first, as on 8xH100): the record's regime
    steps = list(range(0, h.iterations, max(1, h.iterations // 97))) + [h.iterations - 1]
    for step in steps:
        elapsed = (cap or 0.0) * min(1.0, 1.05 * step / h.iterations)
        frac = ns["training_frac"](step, elapsed)
        assert schedule.progress(step, t.iterations, elapsed, cap) == pytest.approx(min(frac, 1.0), abs=1e-12)
        want = ns["lr_mul"](frac)
        got = schedule.lr_multiplier(step, t.iterations, elapsed_ms=elapsed, cap_ms=cap, **sched)
        assert got == pytest.approx(want, abs=1e-12), (step, elapsed)
        assert schedule.muon_momentum(step, t.muon_momentum, t.muon_momentum_warmup_start,
                                      t.muon_momentum_warmup_steps) == pytest.approx(ns["momentum"](step), abs=1e-15)
    # recurrence: the record switches on before the step numbered recur_start_step, golf at >= it
    assert t.recur_start_step == h.recur_start_step
    assert cfg.model.recur_start == 4 and cfg.model.recur_end == 5 and h.recur_layers == "4,5"
    assert t.ema_decay == h.ema_decay and t.ema_start_step == 0


def test_schedule_documented_difference_iterations_before_cap(rec):
    """docs/parity.md: when the iteration count is reached before the (capped) clock, the record
    never enters warmdown (it reads time only); golf takes the further of step and time."""
    h = record_h(rec, MAX_WALLCLOCK_SECONDS=600.0, ITERATIONS=1000)
    ns = _record_schedule(h)
    cfg = preset_config("sp4096-record")
    from golf.config import apply_overrides
    apply_overrides(cfg, {"train.iterations": 1000})
    cap = schedule.effective_cap_ms(cfg.train)
    step, elapsed = 900, 0.2 * cap  # 90% of the steps in 20% of the time
    assert ns["lr_mul"](ns["training_frac"](step, elapsed)) == 1.0
    got = schedule.lr_multiplier(step, 1000, elapsed_ms=elapsed, cap_ms=cap, **schedule.schedule_from_config(cfg.train))
    assert got == pytest.approx(0.1 / 0.667)


def test_ema_matches(rec):
    h = record_h(rec, **SMALL)
    r = rec.GPT(h).float()
    randomize(r, seed=6)
    g = GPT(golf_cfg().model)
    g.load_state_dict(record_to_golf(r.state_dict()))
    ema = EMA(golf_cfg().train.ema_decay)
    ema.start(g)
    rec_state = {k: v.detach().float().clone() for k, v in r.state_dict().items()}
    ns = _record_schedule(h)
    gen = torch.Generator().manual_seed(9)
    for _ in range(3):
        with torch.no_grad():
            for p in r.parameters():
                p.add_(0.01 * torch.randn(p.shape, generator=gen))
        g.load_state_dict(record_to_golf(r.state_dict()))
        ns["ema_update"](r, rec_state, h.ema_decay)
        ema.update(g)
    mapped = record_to_golf(rec_state)
    assert max((mapped[k] - ema.shadow[k]).abs().max().item() for k in mapped) == 0.0
    assert max((mapped[k] - v).abs().max().item() for k, v in g.state_dict().items()) > 1e-3  # it lags


@pytest.mark.parametrize("recurrence", [False, True])
def test_bpb_matches_plain_and_sliding(rec, pair, tiny_data, recurrence):
    h0, r, g = pair
    h = record_h(rec, **SMALL, EVAL_STRIDE=32, VAL_BATCH_TOKENS=8 * 128 * 8)
    h.val_files = str(tiny_data["dataset_dir"] / "fineweb_val_*.bin")
    h.tokenizer_path = str(tiny_data["tokenizer"])
    h.world_size, h.rank, h.grad_accum_steps = 1, 0, 8
    val = rec.load_validation_tokens(h.val_files, h.eval_seq_len)[:16 * 128 + 1]
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=h.tokenizer_path)
    luts = rec.build_sentencepiece_luts(sp, 1024, torch.device("cpu"))
    vd = types.SimpleNamespace(val_tokens=val, base_bytes_lut=luts[0], has_leading_space_lut=luts[1],
                               is_boundary_token_lut=luts[2])
    r.set_recurrence_active(recurrence)
    g.set_recurrence(recurrence)
    g.eval()
    with torch.compiler.set_stance("force_eager"):
        rl, rb = rec.eval_val(h, torch.device("cpu"), vd, r)
        sl, sb = rec.eval_val_sliding(h, torch.device("cpu"), vd, r, batch_seqs=16)
    tokens = val.numpy().astype(np.int64)
    gl = build_byte_luts(str(tiny_data["tokenizer"]), 1024)
    nll = model_nll_fn(g, None)
    plain = eval_plain(nll, tokens, gl, 128, 8)
    slide = eval_sliding(nll, tokens, gl, 128, 32, 16)
    assert abs(plain.val_bpb - rb) < 1e-6 and abs(plain.val_loss - rl) < 1e-6, (plain, rl, rb)
    assert abs(slide.val_bpb - sb) < 1e-6 and abs(slide.val_loss - sl) < 1e-6, (slide, sl, sb)
    assert slide.tokens == len(tokens) - 1 and rb > 0.5


def test_import_state_from_record_builds(rec, tiny_data, tmp_path):
    """`golf import-state --from record` on a state dict saved by the record's model class (with its
    bf16 embedding tables, as its training leaves them), then `golf build`: the build's pre-quant
    BPB is the record's own eval_val BPB on the same validation tokens."""
    from click.testing import CliRunner

    from golf.cli import main as cli

    h = record_h(rec, **SMALL, VAL_BATCH_TOKENS=8 * 128 * 8)
    r = rec.GPT(h).float()
    randomize(r, seed=7)
    with torch.no_grad():
        for emb in (r.tok_emb.weight, r.ve_shared.embed.weight):
            emb.copy_(emb.bfloat16().float())
    state = {k: (v.bfloat16() if k in ("tok_emb.weight", "ve_shared.embed.weight") else v)
             for k, v in r.state_dict().items()}
    torch.save(state, tmp_path / "final_model.pt")
    sets = [f"{k}={v}" for k, v in {**GOLF_SMALL, "quant.calibration_batches": 1,
                                     "quant.calibration_batch_tokens": 1024, "quant.small_tensor_numel": 1024}.items()]
    runner = CliRunner()
    args = ["import-state", "--from", "record", str(tmp_path / "final_model.pt"), "--preset", "sp4096-record",
            "--out", str(tmp_path / "run"), "--no-recurrence"] + [x for s in sets for x in ("--set", s)]
    res = runner.invoke(cli, args)
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["build", "--checkpoint", str(tmp_path / "run"), "--data", str(tiny_data["data_dir"]),
                              "--out", str(tmp_path / "art"), "--val-max-tokens", "2048", "--device", "cpu", "-q"])
    assert res.exit_code == 0, res.output + repr(res.exception)
    import json
    report = json.loads((tmp_path / "art" / "build_report.json").read_text())
    assert report["recurrence_active"] is False and report["config"]["preset"] == "sp4096-record"
    h.val_files = str(tiny_data["dataset_dir"] / "fineweb_val_*.bin")
    h.world_size, h.rank, h.grad_accum_steps = 1, 0, 8
    import sentencepiece as spm
    luts = rec.build_sentencepiece_luts(spm.SentencePieceProcessor(model_file=str(tiny_data["tokenizer"])), 1024,
                                        torch.device("cpu"))
    vd = types.SimpleNamespace(val_tokens=rec.load_validation_tokens(h.val_files, 128)[:2049], base_bytes_lut=luts[0],
                               has_leading_space_lut=luts[1], is_boundary_token_lut=luts[2])
    _, want = rec.eval_val(h, torch.device("cpu"), vd, r)
    assert abs(report["pre_quant"]["roundtrip"]["val_bpb"] - want) < 1e-6
    # a state dict of another shape is refused with the tensor named
    res = runner.invoke(cli, ["import-state", "--from", "record", str(tmp_path / "final_model.pt"), "--out",
                              str(tmp_path / "run2")])
    assert res.exit_code != 0 and ": shape (" in res.output and "in the 'sp4096-record' model" in res.output
