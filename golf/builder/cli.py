"""``golf build``: quantize a trained run into a competition artifact."""
from __future__ import annotations

import shlex
import sys

import click

from golf.config import CHOICES, QUANT_BITS
from golf.protocol import LIMIT_BYTES


def _parse_bits(values: tuple[str, ...]) -> dict:
    """``--bits`` as ``{class: N}`` (syntax only: the range is checked with the other settings)."""
    out = {}
    for v in values:
        for part in v.split(","):
            part = part.strip()
            if not part:
                continue
            key, _, num = part.rpartition("=") if "=" in part else ("matrix", "=", part)
            try:
                out[key] = int(num)
            except ValueError:
                raise click.BadParameter(f"{part!r}: expected N or CLASS=N", param_hint="--bits") from None
    return out


@click.command("build")
@click.option("--checkpoint", "checkpoint", required=True, type=click.Path(exists=True),
              help="Run directory of `golf train` (uses RUN/final_model.pt), a final_model.pt or a "
                   "training checkpoint.")
@click.option("--data", "data_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Data dir holding datasets/fineweb10B_sp{V}/ and tokenizers/fineweb_{V}_bpe.model "
                   "(training shards for calibration, validation shards for the report).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Artifact directory to write: train_gpt.py, final_model.int6.ptz, build_report.json.")
@click.option("--target-bytes", type=click.IntRange(min=1), default=None,
              help="Prune +-1 values until code + blob fit this many bytes (default: the config's, 16,000,000). "
                   "A target far below the unpruned size is reached only by zeroing most +-1 values, which "
                   "ruins the model: the build then warns.")
@click.option("--compressor", type=click.Choice(CHOICES["quant.compressor"]), default=None,
              help="Blob compressor (default brotli quality 11; lzma is used when brotli is missing). grouped: "
                   "the quantized tensors grouped by role (golf/builder/grouped.py: PACK_GROUPS), each group "
                   "coded by interleaved rANS or brotli, whichever is smaller, the rest brotli.")
@click.option("--bits", multiple=True, metavar="N|CLASS=N[,...]",
              help=f"Bits per class, {QUANT_BITS[0]}-{QUANT_BITS[-1]}: a bare N sets all attention/MLP matrices; "
                   "classes matrix, attn, mlp, embed, e.g. --bits 6 --bits embed=7,mlp=5.")
@click.option("--method", type=click.Choice(CHOICES["quant.method"]), default=None,
              help="gptq (Hessian-aware, default) or rtn (round-to-nearest, for comparison). "
                   "Both use the --clip scales.")
@click.option("--clip", type=click.Choice(CHOICES["quant.clip"]), default=None,
              help="Row scales: sdclip (default, the seed: k*std per row, k=12.85 matrices / 20 embeddings) or "
                   "search (the SP4096 record: best of 5 clip quantiles per matrix by weight MSE, scale floor 1/R; "
                   "embeddings clipped at one quantile and rounded); the artifact is then evaluation-only. "
                   "See docs/parity.md for the measured comparison.")
@click.option("--control-dtype", type=click.Choice(CHOICES["quant.control_dtype"]), default=None,
              help="Storage of control tensors (gains, scales, mixes): fp32 (default) or fp16 (as the records).")
@click.option("--allow-oversize", is_flag=True, help="Exit 0 even when code + blob exceed 16,000,000 bytes.")
@click.option("--code-compressor", type=click.Choice(CHOICES["quant.code_compressor"]), default=None,
              help="Compression of the train_gpt.py wrapper. auto (default): the smaller of brotli and raw LZMA2 "
                   "when the blob is brotli-compressed anyway, else LZMA2 (stdlib only).")
@click.option("--train-code/--no-train-code", default=True, show_default=True,
              help="Ship golf's training loop + quantizer in train_gpt.py so GOLF_MODE=train reproduces the run "
                   "(about 8 KB more code); --no-train-code gives an evaluation-only artifact.")
@click.option("--no-prune", is_flag=True, help="Never prune, even above --target-bytes.")
@click.option("--lqer/--no-lqer", default=None,
              help="LQER: a rank-r low-bit correction of the quantization error of the quant.lqer_top_k worst "
                   "tensors (default: the checkpoint's quant.lqer_enabled; rank, bits and group: quant.lqer_*).")
@click.option("--sliding/--no-sliding", default=False, show_default=True,
              help="Also report pre/post sliding-window BPB (slow on CPU).")
@click.option("--val-max-tokens", type=int, default=0, show_default=True,
              help="Score only this many validation tokens in the report (0 = all, the official metric).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None,
              help="Device for calibration, GPTQ and evaluation (default: cuda when available).")
@click.option("--limit-bytes", type=int, default=LIMIT_BYTES, show_default=True,
              help="The competition cap checked for the exit status (change only for experiments).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars (they are drawn only on a terminal anyway).")
def build(checkpoint, data_dir, out_dir, target_bytes, compressor, bits, method, clip, control_dtype, allow_oversize,
          code_compressor,
          train_code, no_prune, lqer, sliding, val_max_tokens, device, limit_bytes, quiet):
    """Quantize a trained checkpoint and pack a self-contained artifact under 16,000,000 bytes.

    \b
    Steps: Hessians from training-data calibration batches (never validation) -> GPTQ with
    SDClip per-row scales (attention/MLP int6, token embedding int8, small floats fp16,
    control tensors fp32) -> pickle-free container, byte shuffle, brotli -> selective +-1
    pruning if over --target-bytes -> train_gpt.py generated from golf's own modules.
    Prints a per-class table, pre/post-quant val BPB and the byte budget; writes
    OUT/build_report.json. Exits non-zero when the total exceeds the limit, unless
    --allow-oversize.
    """
    from golf.builder.build import build as run_build

    run_build(checkpoint, data_dir, out_dir, target_bytes=target_bytes, compressor=compressor,
              bits=_parse_bits(bits), method=method, clip=clip, control_dtype=control_dtype,
              allow_oversize=allow_oversize,
              code_compressor=code_compressor, val_max_tokens=val_max_tokens, sliding=sliding,
              device=device, prune=False if no_prune else None, lqer=lqer, limit_bytes=limit_bytes,
              train_code=train_code,
              command=shlex.join(["golf", "build", *sys.argv[2:]]) if sys.argv[1:2] == ["build"] else "",
              progress=False if quiet else None, log=click.echo)
    click.echo(f"artifact:  {out_dir} (train_gpt.py, final_model.int6.ptz, build_report.json)")
    art, data = shlex.quote(str(out_dir)), shlex.quote(str(data_dir))
    click.echo(f"next:      golf verify {art} --data {data}")
    click.echo(f"then:      golf submit --runs {art} [more seeds] --data {data} --name NAME --author YOU "
               "--github-id ID --out records/track_10min_16mb/DATE_NAME")
