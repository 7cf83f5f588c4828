"""Named presets: model architectures and run budgets.

A preset is a dict of ``{"section.name": value}`` overrides applied on top of the
dataclass defaults (which are the ``seed`` card).  Run presets (Kaggle, Colab, 8×H100)
use the seed architecture with their own budgets.
"""
from __future__ import annotations

from golf.config import ConfigError, GolfConfig, apply_overrides

# The 2026-04-04 SP4096 record (SPEC §3-§4): 34,401,372 parameters.
SP4096_RECORD = {
    "model.vocab_size": 4096, "model.num_layers": 11, "model.model_dim": 512,
    "model.num_heads": 8, "model.num_kv_heads": 4, "model.mlp_mult": 4.0,
    "model.rope_dims": 16, "model.qk_gain_init": 5.0, "model.skip_gates": True,
    "model.parallel_start_layer": 7, "model.recur_start": 4, "model.recur_end": 5,
    "model.recur_loops": 1, "model.xsa_last_n": 11, "model.ln_scale": True,
    "model.resid_mix": True, "model.ve_enabled": True, "model.ve_dim": 128,
    "model.ve_layers": (9, 10), "model.tied_embed_init_std": 0.005,
    "model.parallel_mode": "merge", "model.parallel_skip_quirk": True, "model.skip_count_physical": True,
    "train.matrix_lr": 0.02, "train.scalar_lr": 0.02, "train.tied_embed_lr": 0.03,
    "train.muon_momentum": 0.99, "train.muon_momentum_warmup_start": 0.92,
    "train.muon_momentum_warmup_steps": 1500, "train.muon_wd": 0.09, "train.embed_wd": 0.09,
    "train.adam_wd": 0.02, "train.ema_decay": 0.997, "train.ema_start_step": 0,
    "train.grad_clip_norm": 0.3, "train.warmdown_iters": 0, "train.warmdown_frac": 0.667,
    "train.gptq_reserve_seconds": 10.0, "train.iterations": 20000, "train.recur_start_step": 3000,
    "train.train_batch_tokens": 786432, "train.train_seq_len": 2048,
    "quant.calibration_batches": 64, "train.micro_batch_seqs": 48,
}

# The 2026-04-27 record's phased score-first TTT (SPEC 2.5 c), its run values: LoRA rank 80 (alpha 144) on
# Q/K/V/O/MLP + lm_head, AdamW lr 1e-4, betas (0, 0.99), eps 1e-10, wd 0.5, chunks of 48 with windows of 2048,
# 64 docs per batch, A kept warm; 3 global SGD phases over the first 2,500 docs (lr 1e-3 cosine, momentum 0.9,
# 1 epoch, 32,768-token chunks, 32 x 2048 per step, clip 1.0).
FRONTIER_TTT = {
    "eval.ttt_enabled": True, "eval.ttt_lora_rank": 80, "eval.ttt_lora_alpha": 144.0, "eval.ttt_lora_lr": 1e-4,
    "eval.ttt_beta1": 0.0, "eval.ttt_beta2": 0.99, "eval.ttt_eps": 1e-10, "eval.ttt_weight_decay": 0.5,
    "eval.ttt_chunk_size": 48, "eval.ttt_eval_seq_len": 2048, "eval.ttt_batch_size": 64, "eval.ttt_warm_start_a": True,
    "eval.phased_ttt_prefix_docs": 2500, "eval.phased_ttt_num_phases": 3, "eval.global_ttt_lr": 0.001,
    "eval.global_ttt_momentum": 0.9, "eval.global_ttt_epochs": 1, "eval.global_ttt_chunk_tokens": 32768,
    "eval.global_ttt_batch_seqs": 32, "eval.global_ttt_grad_clip": 1.0,
}

# The 2026-04-27 record (1.0611 BPB; SPEC §4.2-4.3 and "What TOP adds on top of SP4K"): 35,945,671
# parameters; its run command on plain SP8192 shards (CaseOps data is a data option, not the model).
FRONTIER = {
    # model: 11L/512d, 8 heads / 4 KV, MLP x4 LeakyReLU(0.5)^2, no value embeddings
    "model.vocab_size": 8192, "model.num_layers": 11, "model.model_dim": 512,
    "model.num_heads": 8, "model.num_kv_heads": 4, "model.mlp_mult": 4.0, "model.leaky_slope": 0.5,
    "model.tie_embeddings": True, "model.tied_embed_init_std": 0.005, "model.logit_softcap": 30.0,
    "model.rope_dims": 16, "model.rope_base": 10000.0, "model.qk_gain_init": 5.0,
    "model.xsa_last_n": 11, "model.ln_scale": True, "model.resid_mix": True, "model.ve_enabled": False,
    # layers 3-5 three times (17 virtual layers, 8 skip pairs), switched on at 35 % of the budget
    "model.recur_start": 3, "model.recur_end": 5, "model.recur_loops": 2, "model.skip_weights": True,
    "model.skip_gates": True, "model.skip_count_physical": False,
    # parallel decoder from layer 8: the record's cross-lane routing and lane-weight layout, skip after the split
    "model.parallel_start_layer": 8, "model.parallel_mode": "top", "model.parallel_skip_quirk": False,
    # SparseAttnGate (scale 0.5) and SmearGate (BOS-masked) on the first 12 dims
    "model.sparse_attn_gate": 0.5, "model.smear_gate": True, "model.gate_window": 12,
    "model.fused_kernels": True,  # the record's fused MLP and soft-capped CE (CUDA training only)
    # run: 786,432 tokens/step, document-packed rows of 48 x 2048 per GPU, 600 s
    "train.train_batch_tokens": 786432, "train.train_seq_len": 2048, "train.micro_batch_seqs": 48,
    "train.doc_packing": True, "train.iterations": 20000, "train.max_wallclock_seconds": 600.0,
    "train.recur_start_frac": 0.35, "train.recur_start_step": 0,
    # optimizer and schedule (the record's run command)
    "train.matrix_lr": 0.026, "train.scalar_lr": 0.02, "train.tied_embed_lr": 0.03,
    "train.muon_momentum": 0.97, "train.muon_momentum_warmup_start": 0.92,
    "train.muon_momentum_warmup_steps": 1500, "train.muon_backend_steps": 5, "train.muon_wd": 0.095,
    "train.embed_wd": 0.085, "train.adam_wd": 0.02, "train.beta1": 0.9, "train.beta2": 0.99,
    "train.adam_eps": 1e-8, "train.grad_clip_norm": 0.3, "train.ema_decay": 0.9965, "train.ema_start_step": 0,
    "train.warmdown_iters": 0, "train.warmdown_frac": 0.85, "train.min_lr": 0.1, "train.warmup_steps": 0,
    "train.muon_polar_express": True, "train.muon_bf16_momentum": True,  # Polar-Express NS, bf16 momentum
    # quantization (existing fields; GPTQ reserve: the record's compliance re-run needed 8 s of Hessians)
    "train.gptq_reserve_seconds": 8.0, "quant.calibration_batches": 16, "quant.matrix_bits": 6,
    "quant.embed_bits": 7, "quant.matrix_clip_sigmas": 12.85, "quant.embed_clip_sigmas": 14.0,
    "quant.mlp_clip_sigmas": 11.5, "quant.attn_clip_sigmas": 13.0, "quant.control_dtype": "fp16",
    "quant.gate_int8": True, "quant.prune": False,
    "quant.lqer_enabled": True, "quant.lqer_rank": 4, "quant.lqer_top_k": 3,  # the record's LQER (SPEC 5.4)
    # grouped by role like the record's blob; at this size 191,513 B under brotli with the wrapper 2.8 KB larger
    # (benchmarks/bench_pack.py --full-size); small models keep brotli (the demo's total is 976 B smaller with it)
    "quant.compressor": "grouped",
    "eval.eval_seq_len": 2048, "eval.eval_stride": 64,
    # FRONTIER_TTT joins here once train_gpt.py, golf train and golf verify run TTT (issue 24): until then an
    # artifact whose config says TTT would be scored without it
}

# A CPU-sized model with every feature of the seed switched on (recurrence, lanes, skips).
TINY = {
    "model.vocab_size": 1024, "model.num_layers": 6, "model.model_dim": 64,
    "model.num_heads": 4, "model.num_kv_heads": 2, "model.mlp_mult": 4.0,
    "model.rope_dims": 4, "model.parallel_start_layer": 4, "model.recur_start": 2,
    "model.recur_end": 3, "model.recur_loops": 1,
    "train.iterations": 200, "train.warmdown_iters": 60, "train.train_batch_tokens": 8192,
    "train.train_seq_len": 128, "train.max_wallclock_seconds": 0.0, "train.val_loss_every": 100,
    "train.val_batch_tokens": 16384, "train.val_max_tokens": 65536, "train.train_log_every": 20,
    "train.ema_start_step": 20, "train.ema_decay": 0.98, "train.matrix_lr": 0.02,
    "train.tied_embed_lr": 0.05, "train.scalar_lr": 0.04, "train.muon_momentum_warmup_steps": 50,
    "eval.eval_seq_len": 128, "eval.eval_stride": 32, "eval.eval_batch_seqs": 16,
    "quant.calibration_batches": 4,
    # the tiny matrices are far below the 65,536-element fp16 rule: quantize them like the big ones
    "quant.small_tensor_numel": 1024, "quant.calibration_batch_tokens": 16384,
}

# micro_batch_seqs: sequences per GPU per micro-step (grad accumulation makes up the rest of the batch):
# 48 x 2048 fits an 80 GB H100 (as the record); 8 x 2048 is sized for a 16 GB T4 in fp16.
_KAGGLE = {"train.train_batch_tokens": 262144, "train.train_seq_len": 2048, "train.dtype": "fp16",
           "train.micro_batch_seqs": 8}
_COLAB = {"train.train_batch_tokens": 131072, "train.train_seq_len": 2048, "train.dtype": "fp16",
          "train.micro_batch_seqs": 8}


def _run(base: dict, seconds: float, iters: int, warmdown: int, shards: int = 0, **extra) -> dict:
    d = dict(base)
    d.update({"train.max_wallclock_seconds": seconds, "train.iterations": iters,
              "train.warmdown_iters": warmdown, "train.warmdown_frac": 0.0})
    if shards:
        d["train.train_shards"] = shards
    d.update(extra)
    return d


PRESETS: dict[str, dict] = {
    "seed": {"train.micro_batch_seqs": 48},
    "sp4096-record": SP4096_RECORD,
    "frontier": FRONTIER,
    "tiny": TINY,
    "kaggle-quick": _run(_KAGGLE, 600, 2000, 350, 10),
    "kaggle-1h": _run(_KAGGLE, 3600, 8000, 1500, 20),
    "kaggle-12h": _run(_KAGGLE, 39600, 30000, 5000, 106),
    "colab-quick": _run(_COLAB, 600, 2000, 350),
    "colab-1h": _run(_COLAB, 3600, 5000, 1000),
    "colab-max": _run(_COLAB, 36000, 20000, 3500),
    "8xh100": _run({"train.train_batch_tokens": 786432, "train.train_seq_len": 2048, "train.dtype": "bf16",
                    "train.micro_batch_seqs": 48},
                   600, 20000, 0, 0, **{"train.warmdown_frac": 0.667, "train.gptq_reserve_seconds": 10.0}),
}

PRESET_HELP = {
    "seed": "SP4096 11L/512d 8H/4KV MLPx4, recurrence 3-5 x2 from 35%, parallel lanes 7-10 (default)",
    "sp4096-record": "the 2026-04-04 SP4096 record architecture (34,401,372 params)",
    "frontier": "the 2026-04-27 record (1.0611 BPB): SP8192, loops 3-5 x3, routed lanes from 8, gates, doc packing",
    "tiny": "CPU-sized model with every seed feature on, for tests and the demo",
    "kaggle-quick": "Kaggle 2xT4: 600 s / 2000 it / warmdown 350 / 10 shards",
    "kaggle-1h": "Kaggle 2xT4: 3600 s / 8000 it / warmdown 1500 / 20 shards",
    "kaggle-12h": "Kaggle 2xT4: 39600 s / 30000 it / warmdown 5000 / 106 shards",
    "colab-quick": "Colab 1xT4: 600 s / 2000 it / warmdown 350",
    "colab-1h": "Colab 1xT4: 3600 s / 5000 it / warmdown 1000",
    "colab-max": "Colab 1xT4: 36000 s / 20000 it / warmdown 3500",
    "8xh100": "8xH100 competitive: 600 s cap (10 s GPTQ reserve), warmdown 66.7% of wallclock",
}


def preset_config(name: str) -> GolfConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})")
    cfg = GolfConfig(preset=name)
    apply_overrides(cfg, PRESETS[name])
    return cfg
