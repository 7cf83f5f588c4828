"""``golf build`` orchestration: checkpoint -> Hessians -> GPTQ/SDClip -> container -> train_gpt.py.

Writes ``OUT/train_gpt.py``, ``OUT/final_model.int6.ptz`` and ``OUT/build_report.json``
(atomically).  The post-quantization BPB is computed by evaluating the model rebuilt from
the blob *bytes* with the same :func:`golf.builder.entry.evaluate` the artifact runs, so it
matches what ``python train_gpt.py`` prints.
"""
from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from golf import __version__
from golf.builder import codegen, container, entry, quant
from golf.config import ConfigError, GolfConfig
from golf.data.pinning import PinError, check_tokenizer_vocab, file_sha256
from golf.data.shards import data_paths
from golf.device import autocast_dtype
from golf.errors import GolfError
from golf.fsutil import atomic_write_bytes
from golf.protocol import CODE_NAME, ENV_VAL_MAX_TOKENS, LIMIT_BYTES, REPORT_NAME

# Pruning more than this share of the +-1 values to reach --target-bytes gets a warning: the
# values pruned first are the cheapest, the rest cost the model far more.
PRUNE_WARN_SHARE = 0.5


class BuildError(ValueError, GolfError):
    """A build cannot proceed; the message says why and what to change."""


def resolve_compressor(name: str) -> tuple[str, str | None]:
    """(compressor to use, note) — falls back to lzma when brotli is not installed."""
    if name not in container.COMPRESSORS or name == "none":
        raise BuildError(f"unknown compressor {name!r} (brotli | lzma | zlib | grouped)")
    if name in ("brotli", "grouped") and "brotli" not in container.available_compressors():
        return "lzma", "brotli is not installed: fell back to lzma"
    return name, None


def _class_table(info: dict, arrays: dict, qmeta: dict, compressor: str, shuffle: bool,
                 workers: int) -> tuple[dict, dict]:
    """Per-tensor and per-class compressed bytes (each tensor compressed alone, in parallel)."""
    def tensor_arrays(name):  # kind q: name.q, name.s (ql: + the LQER factors); else name itself
        return {k: v for k, v in arrays.items() if k == name or (qmeta[name][0] != "r" and k.startswith(name + "."))}

    def size(name):
        return container.compressed_size(tensor_arrays(name), compressor, shuffle)

    names = list(info)
    with ThreadPoolExecutor(max(1, workers)) as ex:
        sizes = dict(zip(names, ex.map(size, names)))
    per_tensor = {}
    classes: dict[str, dict] = {}
    for n in names:
        rec = dict(info[n])
        rec["compressed_bytes"] = sizes[n]
        per_tensor[n] = rec
        c = classes.setdefault(rec["class"], {"tensors": 0, "params": 0, "bits": set(), "method": set(),
                                              "compressed_bytes": 0})
        c["tensors"] += 1
        c["params"] += rec["params"]
        c["bits"].add(rec["bits"])
        c["method"].add(rec["method"])
        c["compressed_bytes"] += sizes[n]
    total = sum(c["compressed_bytes"] for c in classes.values()) or 1
    out = {}
    for cls in quant.CLASSES:
        if cls in classes:
            c = classes[cls]
            out[cls] = {"tensors": c["tensors"], "params": c["params"], "bits": sorted(c["bits"]),
                        "method": sorted(c["method"]), "compressed_bytes": c["compressed_bytes"],
                        "share": c["compressed_bytes"] / total,
                        "bytes_per_param": c["compressed_bytes"] / max(1, c["params"])}
    return per_tensor, out


def _run_dir_of(checkpoint) -> str | None:
    """Absolute path of the `golf train` run directory a checkpoint came from (None if unknown)."""
    p = Path(checkpoint).resolve()
    run = p if p.is_dir() else (p.parent.parent if p.parent.name == "checkpoints" else p.parent)
    return str(run) if (run / "train.log").is_file() or (run / "config.json").is_file() else None


def _res(r) -> dict | None:
    if r is None:
        return None
    return {"val_loss": r.val_loss, "val_bpb": r.val_bpb, "tokens": r.tokens, "bytes": r.bytes,
            "eval_time_ms": r.elapsed_ms}


# build() keyword -> (quant setting, the `golf build` option an error names)
QUANT_OPTIONS = {
    "target_bytes": ("quant.target_bytes", "--target-bytes"), "compressor": ("quant.compressor", "--compressor"),
    "method": ("quant.method", "--method"), "clip": ("quant.clip", "--clip"),
    "control_dtype": ("quant.control_dtype", "--control-dtype"),
    "code_compressor": ("quant.code_compressor", "--code-compressor"), "prune": ("quant.prune", "--no-prune"),
    "lqer": ("quant.lqer_enabled", "--lqer"),
}
# --bits CLASS=N -> the quant setting
BITS_CLASSES = {"matrix": "quant.matrix_bits", "attn": "quant.attn_bits", "mlp": "quant.mlp_bits",
                "embed": "quant.embed_bits"}


def quant_overrides(options: dict, bits: dict | None) -> dict[str, tuple[object, str]]:
    """``{key: (value, option name)}`` (the ``flags`` of :func:`golf.resolve.resolve_config`) from build()'s
    quant keywords (None = not given) and ``bits`` ``{class: N}``."""
    flags = {}
    for option, value in options.items():
        if value is not None:
            key, name = QUANT_OPTIONS[option]
            flags[key] = (value, name)
    for cls, value in (bits or {}).items():
        if cls not in BITS_CLASSES:
            raise BuildError(f"--bits: unknown class {cls!r} ({', '.join(BITS_CLASSES)})")
        flags[BITS_CLASSES[cls]] = (value, f"--bits {cls}=")
    return flags


def _configured(checkpoint, flags: dict):
    """Load the checkpoint and apply the options to its config.  The options are checked on the
    default config first, so a bad one fails before the (slow) load."""
    from golf.resolve import resolve_config
    from golf.trainer.checkpoint import load_final_full

    try:
        resolve_config(base=GolfConfig(), flags=flags, environ={})
        cfg, state, recurrence = load_final_full(checkpoint)
        cfg, _ = resolve_config(base=cfg, flags=flags, environ={})
    except ConfigError as e:
        raise BuildError(str(e)) from None
    return cfg, state, recurrence


def _code_plan(q, train_code: bool) -> tuple[str, bool, list[str]]:
    """(blob compressor, whether train_gpt.py ships the training path, notes)."""
    comp, comp_note = resolve_compressor(q.compressor)
    notes = [comp_note] if comp_note else []
    if train_code and q.clip != "sdclip":
        # the shipped quantizer is SDClip (code budget): such an artifact cannot re-quantize itself
        train_code = False
        notes.append(f"--clip {q.clip} is a toolkit comparison option: "
                     "the artifact is evaluation-only (no GOLF_MODE=train path)")
    return comp, train_code, notes


def _data_files(cfg, data_dir, checkpoint) -> tuple[str, str]:
    """The dataset directory and tokenizer for the model's vocabulary, checked."""
    ds_dir, tok_path = data_paths(data_dir, cfg.model.vocab_size, environ={})
    if not Path(ds_dir).is_dir():
        raise BuildError(f"--data {data_dir}: no dataset directory {ds_dir} for vocab {cfg.model.vocab_size}")
    if not Path(tok_path).is_file():
        raise BuildError(f"--data {data_dir}: no tokenizer {tok_path}")
    try:  # a tokenizer of another vocabulary would count the bytes wrong: refuse it in one line
        check_tokenizer_vocab(tok_path, cfg.model.vocab_size, f"the checkpoint {checkpoint}")
    except PinError as e:
        raise BuildError(f"--data {data_dir}: {e}") from None
    return ds_dir, tok_path


def _code(cfg, train_code: bool) -> tuple[bytes, dict]:
    """train_gpt.py for this config, and codegen's info."""
    code_comp = cfg.quant.code_compressor
    if code_comp == "auto":  # the smaller of the two, but never a new runtime dependency for the artifact
        code_comp = "auto" if cfg.quant.compressor in ("brotli", "grouped") else "lzma"
    code_text, code_info = codegen.generate(cfg, code_comp, include_train=train_code)
    return code_text.encode("utf-8"), code_info


def build(checkpoint, data_dir, out_dir, *, target_bytes: int | None = None, compressor: str | None = None,
          bits: dict | None = None, method: str | None = None, clip: str | None = None,
          control_dtype: str | None = None, allow_oversize: bool = False,
          code_compressor: str | None = None, val_max_tokens: int = 0, sliding: bool = False,
          device: str | None = None, prune: bool | None = None, lqer: bool | None = None,
          limit_bytes: int = LIMIT_BYTES,
          train_code: bool = True, command: str = "",
          progress: bool | None = None, log=print) -> dict:
    """Build an artifact; returns the report dict (also written to ``OUT/build_report.json``).

    The quant keywords (``target_bytes`` ... ``prune``, ``bits`` ``{class: N}``) override the
    checkpoint's ``quant`` settings (None = keep).  ``progress``: None = bars only on a terminal
    (golf.progress), False = none, and no pruning lines.  Raises :class:`BuildError` for bad inputs
    and, unless ``allow_oversize``, when the total exceeds ``limit_bytes`` (the artifact is still
    written for inspection).
    """
    from golf.model.gpt import CONTROL_PATTERNS

    t_start = time.perf_counter()
    options = {"target_bytes": target_bytes, "compressor": compressor, "method": method, "clip": clip,
               "control_dtype": control_dtype, "code_compressor": code_compressor, "prune": prune, "lqer": lqer}
    cfg, state, recurrence = _configured(checkpoint, quant_overrides(options, bits))
    q = cfg.quant
    q.compressor, train_code, notes = _code_plan(q, train_code)

    dev = entry.pick_device(device)
    ds_dir, tok_path = _data_files(cfg, data_dir, checkpoint)
    settings = entry.eval_settings(cfg, {ENV_VAL_MAX_TOKENS: str(val_max_tokens or 0)})
    settings["sliding"] = bool(sliding)
    val, luts = entry.load_eval_data(cfg, settings, ds_dir, tok_path)
    timings = {}

    t0 = time.perf_counter()
    model = entry.build_model(cfg, {k: v for k, v in state.items()}, recurrence, dev)
    pre = entry.evaluate(model, val, luts, settings, dev, progress=progress)
    timings["pre_eval_s"] = time.perf_counter() - t0
    log(f"pre-quant   val_bpb:{pre['roundtrip'].val_bpb:.8f}")

    t0 = time.perf_counter()  # calibration (training data) + quantization
    arrays, qmeta, info, hessians = quant.quantize_model(model, cfg, ds_dir, CONTROL_PATTERNS, dev,
                                                         autocast_dtype(dev), progress)
    timings["calibrate_quantize_s"] = time.perf_counter() - t0
    del model

    code, code_info = _code(cfg, train_code)
    notes += code_info["notes"]

    t0 = time.perf_counter()  # serialize, prune to the target
    meta = dict(quant.blob_meta(cfg, qmeta, recurrence),
                build=codegen.build_flags(code_info["code_compressor"], train_code,
                                          code_info["payload_sha256"]))  # reproducible-build check
    blob, arrays, prune_info = quant.pack_to_target(arrays, qmeta, info, hessians, meta, q, len(code),
                                                    None if progress is False else log)
    timings["serialize_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()  # post-quantization eval from the blob bytes
    arrs2, meta2, _ = container.unpack(blob)
    qmodel = entry.build_model(cfg, container.dequantize(arrs2, meta2), recurrence, dev)
    post = entry.evaluate(qmodel, val, luts, settings, dev, progress=progress)
    timings["post_eval_s"] = time.perf_counter() - t0
    del qmodel

    per_tensor, class_table = _class_table(info, arrays, qmeta, q.compressor, q.byte_shuffle, os.cpu_count() or 1)
    timings["total_s"] = time.perf_counter() - t_start
    report = _report(
        cfg, checkpoint=checkpoint, command=command, data_dir=data_dir, tok_path=tok_path, recurrence=recurrence,
        code=code, code_info=code_info, blob=blob, info=info, class_table=class_table, per_tensor=per_tensor,
        pre=pre, post=post, settings=settings, train_code=train_code, limit_bytes=limit_bytes,
        prune_info=prune_info, timings=timings, notes=notes)
    _write(Path(out_dir), code, blob, report)
    log(format_report(report))
    if not report["fits"] and not allow_oversize:
        total = report["total_bytes"]
        raise BuildError(f"artifact is {total:,} bytes, {total - limit_bytes:,} over the {limit_bytes:,}-byte limit "
                         f"(written to {out_dir} for inspection); lower --bits, keep pruning on with --target-bytes, "
                         "or pass --allow-oversize")
    return report


def _report(cfg, *, checkpoint, command, data_dir, tok_path, recurrence, code, code_info, blob, info,
            class_table, per_tensor, pre, post, settings, train_code, limit_bytes, prune_info, timings,
            notes) -> dict:
    """The build report (``OUT/build_report.json``)."""
    q = cfg.quant
    total = len(code) + len(blob)
    return {
        "golf": __version__,
        "checkpoint": str(checkpoint),
        "run_dir": _run_dir_of(checkpoint),
        "seed": cfg.train.seed,
        "command": command,
        "config": cfg.to_dict(),
        "data": str(data_dir),
        "tokenizer_sha256": file_sha256(tok_path),
        "method": q.method,
        "clip": q.clip,
        "control_dtype": q.control_dtype,
        "compressor": q.compressor,
        "code_compressor": code_info["code_compressor"],
        "recurrence_active": bool(recurrence),
        "quant": {k: getattr(q, k) for k in q.__dataclass_fields__},
        "params": sum(r["params"] for r in info.values()),
        "classes": class_table,
        "tensors": per_tensor,
        "pre_quant": {"roundtrip": _res(pre["roundtrip"]), "sliding": _res(pre["sliding"])},
        "post_quant": {"roundtrip": _res(post["roundtrip"]), "sliding": _res(post["sliding"])},
        "quant_tax_bpb": post["roundtrip"].val_bpb - pre["roundtrip"].val_bpb,
        "eval": settings,
        "code_bytes": len(code),
        "code_payload_bytes": code_info["payload_bytes"],
        "code_modules": code_info["modules"],
        "train_code": bool(train_code),
        "blob_bytes": len(blob),
        "total_bytes": total,
        "limit_bytes": limit_bytes,
        "slack_bytes": limit_bytes - total,
        "fits": total <= limit_bytes,
        "pruning": prune_info,
        "timings": timings,
        "notes": notes,
        "warnings": _target_warnings(prune_info, total) if q.prune else [],
    }


def _write(out: Path, code: bytes, blob: bytes, report: dict) -> None:
    """The three artifact files, each written atomically."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / CODE_NAME, code)
    atomic_write_bytes(out / entry.BLOB_NAME, blob)
    atomic_write_bytes(out / REPORT_NAME, (json.dumps(report, indent=2, sort_keys=True, default=str) + "\n").encode())


def _target_warnings(prune_info: dict, total: int) -> list[str]:
    """Warnings when ``--target-bytes`` could not be met, or only by pruning most +-1 values."""
    target, pruned, cands = prune_info["target_bytes"], prune_info["pruned"], prune_info["candidates"]
    if total > target:
        return [f"--target-bytes {target:,} is unreachable: pruning {pruned:,} of {cands:,} +-1 values still "
                f"leaves {total:,} bytes; lower --bits instead"]
    if cands and pruned > PRUNE_WARN_SHARE * cands:
        return [f"--target-bytes {target:,} was reached only by zeroing {pruned:,} of {cands:,} +-1 values "
                f"({100 * pruned / cands:.0f}%), which damages the model (see the post-quant val_bpb); "
                "raise the target or lower --bits"]
    return []


def format_report(r: dict) -> str:
    lines = [f"{'class':<8} {'tensors':>7} {'params':>12} {'bits':>6} {'method':<10} {'compressed':>12} {'share':>7}"
             f" {'B/param':>8}"]
    for cls, c in r["classes"].items():
        bits = ",".join(str(b) for b in c["bits"])
        lines.append(f"{cls:<8} {c['tensors']:>7} {c['params']:>12,} {bits:>6} {'/'.join(c['method']):<10} "
                     f"{c['compressed_bytes']:>12,} {100 * c['share']:>6.1f}% {c['bytes_per_param']:>8.3f}")
    pre, post = r["pre_quant"]["roundtrip"], r["post_quant"]["roundtrip"]
    lines.append(f"val_bpb     pre-quant {pre['val_bpb']:.8f}   post-quant {post['val_bpb']:.8f}   "
                 f"tax {post['val_bpb'] - pre['val_bpb']:+.6f}")
    if r["post_quant"]["sliding"]:
        lines.append(f"sliding     pre-quant {r['pre_quant']['sliding']['val_bpb']:.8f}   "
                     f"post-quant {r['post_quant']['sliding']['val_bpb']:.8f}")
    p = r["pruning"]
    if p["pruned"]:
        lines.append(f"pruning     {p['pruned']:,} of {p['candidates']:,} +-1 values zeroed for target "
                     f"{p['target_bytes']:,}")
    lines.append(f"code        {r['code_bytes']:>12,} bytes  ({CODE_NAME}, {r['code_compressor']})")
    lines.append(f"blob        {r['blob_bytes']:>12,} bytes  ({entry.BLOB_NAME}, {r['compressor']})")
    verdict = "OK" if r["fits"] else "OVER THE LIMIT"
    lines.append(f"total       {r['total_bytes']:>12,} bytes  limit {r['limit_bytes']:,}  slack {r['slack_bytes']:+,}  "
                 f"{verdict}")
    for n in r["notes"]:
        lines.append(f"note: {n}")
    for w in r.get("warnings", ()):
        lines.append(f"warning: {w}")
    return "\n".join(lines)
