"""``main()`` of the generated ``train_gpt.py`` (the artifact protocol in docs/DESIGN.md).

``GOLF_MODE=eval`` (default when ``final_model.int6.ptz`` lies beside the script): load the
blob, rebuild the model, evaluate on the validation shards and print the official lines.
``GOLF_MODE=train``: re-run the training recipe embedded in the script, quantize, write the
blob beside the script, then evaluate.

Environment: ``DATA_DIR`` (default ``./data/``), ``DATA_PATH``, ``TOKENIZER_PATH``,
``VAL_MAX_TOKENS``, ``EVAL_SEQ_LEN``, ``EVAL_STRIDE``, ``SLIDING_WINDOW_ENABLED``,
``GOLF_DEVICE`` (cpu|cuda); ``GOLF_EVAL_PROTOCOL=golf-eval/2`` with ``GOLF_EVAL_IN``/``GOLF_EVAL_OUT``
(pipe fds): instead of reading data, answer the verifier's windows (docs/cli-verify.md).
Exit codes (golf.protocol): 0 ok, 2 bad mode / train path unavailable / device, precision or training-data
problem, 3 malformed blob, 4 data not found.

Shipped inside ``train_gpt.py``: stdlib, numpy, torch, sentencepiece and golf's shippable modules.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np
import torch

from golf.builder.container import ContainerError, load_blob
from golf.config import GolfConfig
from golf.data.loader import load_val_tokens
from golf.data.shards import ShardError, data_paths
from golf.device import RunError, autocast_dtype, resolve_device
from golf.metric import byte_source, eval_plain, eval_sliding, model_nll_fn
from golf.model.gpt import GPT
from golf.protocol import (
    BLOB_NAME,
    ENV_DATA_DIR,
    ENV_DEVICE,
    ENV_EVAL_PROTOCOL,
    ENV_MODE,
    ENV_RUN_DIR,
    ENV_VAL_MAX_TOKENS,
    EVAL_LINE,
    EXIT_BAD_BLOB,
    EXIT_NO_DATA,
    EXIT_USAGE,
    LABEL_ROUNDTRIP,
    LABEL_SLIDING,
    SIZE_LINES,
)
from golf.verifier.scoring.protocol import serve

# Build flag like golf.TOOLKIT: False in an evaluation-only train_gpt.py (golf build --no-train-code),
# where the training path is not shipped; the builder folds it (golf/builder/slim.py).
TRAIN_CODE = True


def pick_device(name: str | None = None) -> torch.device:
    return resolve_device(name or os.environ.get(ENV_DEVICE) or "auto")


def eval_settings(cfg: GolfConfig, environ=None) -> dict:
    """Evaluation knobs from the config, overridden by the documented environment variables."""
    env = os.environ if environ is None else environ
    sw = env.get("SLIDING_WINDOW_ENABLED", "")
    return {
        "seq_len": int(env.get("EVAL_SEQ_LEN") or cfg.eval.eval_seq_len),
        "stride": int(env.get("EVAL_STRIDE") or cfg.eval.eval_stride),
        "batch_seqs": int(env.get("EVAL_BATCH_SEQS") or cfg.eval.eval_batch_seqs),
        "sliding": cfg.eval.sliding_window if sw == "" else sw.strip().lower() in ("1", "true", "yes", "on"),
        "max_tokens": int(env.get(ENV_VAL_MAX_TOKENS) or 0),
    }


def load_eval_data(cfg: GolfConfig, settings: dict, dataset_dir: str, tokenizer: str):
    v = cfg.model.vocab_size
    val = load_val_tokens(dataset_dir, settings["seq_len"], v, settings["max_tokens"])
    return val, byte_source(dataset_dir, tokenizer, v, len(val))


def build_model(cfg: GolfConfig, state: dict, recurrence: bool, device) -> GPT:
    model = GPT(cfg.model)
    model.load_state_dict(state, strict=True)
    model.set_recurrence(bool(recurrence))
    return model.to(device).eval()


def evaluate(model, val_tokens, luts, settings: dict, device, sliding: bool | None = None,
             progress: bool = False) -> dict:
    """``{"roundtrip": EvalResult, "sliding": EvalResult | None}`` (plain eval, then sliding-window)."""
    fn = model_nll_fn(model, autocast_dtype(torch.device(device)))
    out = {"roundtrip": eval_plain(fn, val_tokens, luts, settings["seq_len"], settings["batch_seqs"], device,
                                   progress=progress), "sliding": None}
    if settings["sliding"] if sliding is None else sliding:
        out["sliding"] = eval_sliding(fn, val_tokens, luts, settings["seq_len"], settings["stride"],
                                      settings["batch_seqs"], device, progress=progress)
    return out


def protocol_windows(model, device):
    """The golf-eval/2 ``windows`` answer: log-probabilities of the next token at every position."""
    dt = autocast_dtype(torch.device(device))

    def answer(inputs):
        x = torch.from_numpy(inputs.astype(np.int64)).to(device)
        with torch.no_grad(), torch.autocast(device_type=x.device.type, dtype=dt or torch.bfloat16,
                                             enabled=dt is not None):
            return torch.log_softmax(model.logits(x).float(), dim=-1).cpu().numpy()
    return answer


def run_eval(script: str, blob: str) -> int:
    state, meta, info = load_blob(blob)
    cfg = GolfConfig.from_dict(meta["config"])
    device = pick_device()
    model = build_model(cfg, state, meta.get("recurrence_active", False), device)
    if os.environ.get(ENV_EVAL_PROTOCOL):  # the verifier streams the windows (golf-eval/2); no data is read
        serve({"vocab_size": cfg.model.vocab_size, "eval_seq_len": cfg.eval.eval_seq_len,
               "eval_stride": cfg.eval.eval_stride}, protocol_windows(model, device))
        return 0
    settings = eval_settings(cfg)
    ds, tok = data_paths(os.environ.get(ENV_DATA_DIR) or "./data/", cfg.model.vocab_size)
    val, luts = load_eval_data(cfg, settings, ds, tok)
    res = evaluate(model, val, luts, settings, device)
    for label, r in ((LABEL_ROUNDTRIP, res["roundtrip"]), (LABEL_SLIDING, res["sliding"])):
        if r is not None:
            print(EVAL_LINE.format(label, r.val_loss, r.val_bpb, r.elapsed_ms), flush=True)
    code, model_bytes = os.path.getsize(script), os.path.getsize(blob)
    print(SIZE_LINES.format(code, info["compressor"], model_bytes, code + model_bytes), flush=True)
    return 0


def run_train(script: str, cfg: GolfConfig) -> int:
    """Reproduce the run: golf's training loop, then quantize, write the blob beside the script, evaluate."""
    if not TRAIN_CODE:
        print(f"error: GOLF_MODE=train: this train_gpt.py ships no training path; use golf train + golf build "
              f"with its embedded config, or put {BLOB_NAME} beside it", file=sys.stderr)
        return EXIT_USAGE
    from golf.builder.quant import build_artifact_blob
    from golf.config import apply_env
    from golf.model.gpt import CONTROL_PATTERNS
    from golf.trainer.loop import RunOptions, train
    here = os.path.dirname(script)
    apply_env(cfg)
    cfg.train.data_dir = os.environ.get(ENV_DATA_DIR) or "./data/"
    cfg.train.run_dir = os.environ.get(ENV_RUN_DIR) or os.path.join(here, "run")
    summary = train(cfg, RunOptions(device=os.environ.get(ENV_DEVICE) or "auto", return_state=True))
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    state, rec = summary["state"], summary["recurrence_active"]
    device = pick_device()
    model = build_model(cfg, state, rec, device)
    blob = os.path.join(here, BLOB_NAME)
    ds, _ = data_paths(cfg.train.data_dir, cfg.model.vocab_size)
    build_artifact_blob(model, cfg, rec, ds, blob, os.path.getsize(script), CONTROL_PATTERNS, device,
                        autocast_dtype(device))
    del model
    return run_eval(script, blob)


def main(script: str | None = None, config_json: str | None = None) -> int:
    script = os.path.abspath(script or sys.argv[0])
    blob = os.path.join(os.path.dirname(script), BLOB_NAME)
    mode = (os.environ.get(ENV_MODE) or ("eval" if os.path.isfile(blob) else "train")).strip().lower()
    try:
        if mode == "eval":
            if os.path.isfile(blob):
                rc = run_eval(script, blob)
            else:
                print(f"error: GOLF_MODE=eval but there is no model blob {blob}", file=sys.stderr)
                rc = EXIT_BAD_BLOB
        elif mode == "train":
            cfg = GolfConfig.from_dict(json.loads(config_json)) if config_json else GolfConfig()
            rc = run_train(script, cfg)
        else:
            print(f"error: GOLF_MODE must be 'eval' or 'train', got {mode!r}", file=sys.stderr)
            rc = EXIT_USAGE
    except ContainerError as e:
        print(f"error: malformed model blob {blob}: {e}", file=sys.stderr)
        rc = EXIT_BAD_BLOB
    except RunError as e:  # device, precision, training data, divergence
        print(f"error: {e}", file=sys.stderr)
        rc = EXIT_USAGE
    except (ShardError, FileNotFoundError, OSError) as e:
        print(f"error: {e} (set DATA_DIR, DATA_PATH or TOKENIZER_PATH)", file=sys.stderr)
        rc = EXIT_NO_DATA
    if rc:
        raise SystemExit(rc)
    return rc
