"""Every preset builds and verifies: features kept on, sizes scaled down to CPU.

For each preset in ``golf.presets.PRESETS`` (a new preset is covered automatically) the test
keeps every feature switch and layer index of the preset (depth recurrence, parallel lanes,
value embeddings, XSA, skip gates, schedules, quantization settings) and scales only sizes:
width 32, 2 heads, vocab 1024 (the ``tiny_data`` tokenizer), short sequences, a few steps.
Depth is kept, since the layer indices of the features depend on it (11 layers of width 32
are cheap).  Presets whose scaled model is the same share one training run; each preset then
gets its own run directory with its own config, `golf build` and `golf verify`.
"""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from golf.cli import main as cli
from golf.config import apply_overrides
from golf.presets import PRESETS, preset_config

VAL_TOKENS = 1024


def scaled_config(name: str, tiny_data, run_dir):
    """The preset's config with sizes scaled to CPU (features and layer indices unchanged)."""
    cfg = preset_config(name)
    m, t = cfg.model, cfg.train
    kv = 1 if m.num_kv_heads < m.num_heads else 2
    apply_overrides(cfg, {
        "model.vocab_size": 1024, "model.model_dim": 32, "model.num_heads": 2, "model.num_kv_heads": kv,
        "model.rope_dims": min(m.rope_dims, 8), "model.ve_dim": 8,
        "train.train_seq_len": 64, "train.train_batch_tokens": 512, "train.micro_batch_seqs": 0,
        "train.iterations": 4, "train.max_wallclock_seconds": 0.0, "train.gptq_reserve_seconds": 0.0,
        "train.warmdown_iters": 2 if t.warmdown_iters > 0 else 0,
        "train.recur_start_step": 2 if t.recur_start_step > 0 else 0,
        "train.ema_start_step": min(t.ema_start_step, 1), "train.muon_momentum_warmup_steps": 2,
        "train.val_loss_every": 0, "train.val_max_tokens": VAL_TOKENS, "train.train_log_every": 1,
        "train.train_shards": 0, "train.checkpoint_every": 0, "train.compile": False,
        "train.dtype": "fp32" if t.dtype == "fp16" else t.dtype,  # fp16 needs a CUDA GPU
        "train.data_dir": str(tiny_data["data_dir"]), "train.run_dir": str(run_dir),
        "eval.eval_seq_len": 64, "eval.eval_stride": 32, "eval.eval_batch_seqs": 8,
        "quant.calibration_batches": 1, "quant.calibration_batch_tokens": 512, "quant.small_tensor_numel": 256,
    })
    return cfg


@pytest.fixture(scope="module")
def trained():
    """{scaled model config JSON: (state dict, recurrence_active)}, trained on demand, once per architecture."""
    return {}


def _train_or_share(cfg, trained, run_dir):
    from golf.trainer.checkpoint import load_final_full, save_final
    from golf.trainer.loop import RunOptions, train

    key = json.dumps(cfg.to_dict()["model"], sort_keys=True)
    if key not in trained:
        train(cfg, RunOptions(progress=False, echo=False, device="cpu"))
        _, state, rec = load_final_full(run_dir)
        trained[key] = (state, rec)
        return
    state, rec = trained[key]
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(cfg.to_json() + "\n", encoding="utf-8")
    save_final(run_dir, cfg, state, rec)


# seed, frontier and tiny in the main suite; the GPU-run presets (same code paths, other numbers) in the slow step
QUICK = ("seed", "frontier", "tiny")


@pytest.mark.parametrize("name", [n if n in QUICK else pytest.param(n, marks=pytest.mark.slow) for n in PRESETS])
def test_preset_trains_builds_and_verifies(name, tiny_data, trained, tmp_path):
    run, art = tmp_path / "run", tmp_path / "art"
    cfg = scaled_config(name, tiny_data, run)
    _train_or_share(cfg, trained, run)
    r = CliRunner().invoke(cli, ["build", "--checkpoint", str(run), "--data", str(tiny_data["data_dir"]),
                                 "--out", str(art), "--val-max-tokens", str(VAL_TOKENS), "--device", "cpu", "-q"])
    assert r.exit_code == 0, r.output + repr(r.exception)
    report = json.loads((art / "build_report.json").read_text())
    assert report["config"]["preset"] == name
    tensors = report["tensors"]
    for tname, rec in tensors.items():
        if rec["class"] in ("attn", "mlp"):  # every block matrix is quantized with its own input's Hessian
            assert rec["method"] in ("gptq", "gptq+lqer"), (tname, rec["method"])  # frontier: the record's LQER
    if cfg.model.ve_enabled:  # a value-embedding table is a lookup: no Hessian, round-to-nearest
        assert tensors["ve_shared.embed.weight"]["method"] == "rtn"
    if cfg.model.tie_embeddings:  # the tied embedding is the head: the head input's Hessian
        assert tensors["tok_emb.weight"]["method"] in ("gptq", "gptq+lqer")
    v = CliRunner().invoke(cli, ["verify", str(art), "--data", str(tiny_data["data_dir"]),
                                 "--val-max-tokens", str(VAL_TOKENS)])
    assert v.exit_code == 0, v.output + repr(v.exception)
