"""``golf data`` commands."""
from __future__ import annotations

import json

import click


@click.group()
def data() -> None:
    """Get token shards and tokenizers: download them from the Hub or build them from your documents.

    \b
    Both write the layout the challenge scripts expect:
      DIR/datasets/fineweb10B_sp<V>/fineweb_{val,train}_NNNNNN.bin
      DIR/tokenizers/fineweb_<V>_bpe.model (+ .vocab)
      DIR/manifest.json
    """


def _parse_sp_options(items: tuple[str, ...]) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint="--sp-option")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


@data.command("build")
@click.option("--docs", "docs", multiple=True, required=True, metavar="FILE|sample",
              help="Input documents; repeatable, read in the given order. .jsonl = one JSON object per line with a "
                   "'text' field; .txt/.md = the whole file is ONE document. .xz/.gz/.bz2 compression is allowed. "
                   "'sample' = the small corpus packaged with golf (golf/data/sample/).")
@click.option("--vocab-size", type=int, required=True,
              help="Tokenizer vocabulary size V (at most 65536: ids are uint16).")
@click.option("--out", "out_dir", default="data", show_default=True, type=click.Path(file_okay=False, path_type=str),
              help="Output root (gets datasets/, tokenizers/, manifest.json).")
@click.option("--num-val-docs", type=int, default=None,
              help="The first N documents form the validation split, the rest the train split. "
                   "[default: docs_val of a docs_selected.source_manifest.json next to the input, else 50000]")
@click.option("--shard-tokens", type=int, default=100_000_000, show_default=True,
              help="Tokens per shard (the last shard of each split is shorter).")
@click.option("--tokenizer", "tokenizer_model", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Reuse this SentencePiece .model instead of training one (its size must equal --vocab-size).")
@click.option("--tokenizer-train-docs", type=int, default=0, show_default=True,
              help="Train the tokenizer on the first N documents only (0 = all). Note: the first documents are the "
                   "validation documents, as in the official exporter.")
@click.option("--workers", type=int, default=None,
              help="Encoding processes. [default: MATCHED_FINEWEB_TOKENIZER_THREADS, else all CPU cores]")
@click.option("--sp-batch-size", type=int, default=None,
              help="Documents per encoding job. [default: MATCHED_FINEWEB_SP_BATCH_SIZE, else 1024]")
@click.option("--sp-option", "sp_options", multiple=True, metavar="KEY=VALUE",
              help="Extra SentencePiece trainer option, e.g. max_sentence_length=100000 (repeatable).")
@click.option("--caseops", is_flag=True,
              help="The CaseOps variant (SPEC 1.6): ASCII case moved into operator characters before tokenizing, "
                   "a tokenizer with the operators reserved as pieces 4-7 (or --tokenizer: the record's "
                   "fineweb_8192_bpe_lossless_caps_caseops_v1_reserved.model), the record's names "
                   "(fineweb10B_sp<V>_lossless_caps_caseops_v1_reserved) and the validation byte sidecar "
                   "fineweb_val_bytes_NNNNNN.bin, so BPB counts the bytes of the original text.")
@click.option("--force", is_flag=True, help="Replace an existing fineweb10B_sp<V> dataset in --out.")
@click.option("--no-progress", is_flag=True, help="No progress bars (they are drawn only on a terminal anyway).")
def build_cmd(docs, vocab_size, out_dir, num_val_docs, shard_tokens, tokenizer_model, tokenizer_train_docs, workers,
              sp_batch_size, sp_options, caseops, force, no_progress) -> None:
    """Build a dataset from your own documents: tokenizer + token shards + manifest.

    Trains a SentencePiece BPE tokenizer with the official options (nmt_nfkc, byte
    fallback, split digits, no dummy prefix, pad/bos/eos/unk = 0/1/2/3) or reuses one
    (--tokenizer), then writes every document as BOS(1) + its tokens (no EOS) into
    fineweb_val_*.bin (first --num-val-docs documents) and fineweb_train_*.bin shards,
    encoding on all cores. Shards appear only when the whole build succeeded. A training
    document that is the same text as a validation document stops the build (no overlap).

    \b
    Examples:
      golf data build --docs docs.jsonl.xz --vocab-size 4096 --num-val-docs 5000 --out data
      golf data build --docs sample --vocab-size 1024 --num-val-docs 60 --out data   # packaged sample
      golf data build --docs docs_selected.jsonl --vocab-size 8192 --caseops \\
          --tokenizer fineweb_8192_bpe_lossless_caps_caseops_v1_reserved.model --out data_caseops
    """
    from golf.data.build import DEFAULT_NUM_VAL_DOCS, _source_sidecar, build_dataset, check_doc_files

    try:
        paths = check_doc_files(docs)
        if num_val_docs is None:
            num_val_docs = int(_source_sidecar(paths).get("docs_val") or DEFAULT_NUM_VAL_DOCS)
        summary = build_dataset(
            docs=paths, vocab_size=vocab_size, out_dir=out_dir, num_val_docs=num_val_docs, shard_tokens=shard_tokens,
            workers=workers, progress=False if no_progress else None, tokenizer_model=tokenizer_model,
            tokenizer_train_docs=tokenizer_train_docs, sp_batch_size=sp_batch_size, overwrite=force,
            trainer_overrides=_parse_sp_options(sp_options), log=lambda m: click.echo(m, err=True), caseops=caseops,
        )
    except OSError as e:  # golf's own errors are reported by the `golf` group
        raise click.ClickException(str(e)) from None
    for w in summary["warnings"]:
        click.echo(f"warning: {w}", err=True)
    for split in ("val", "train"):
        s = summary["splits"][split]
        click.echo(f"{split + ':':<7}{_plural(s['docs'], 'doc')}, {_plural(s['tokens'], 'token')}, "
                   f"{_plural(len(s['files']), 'shard')}")
    mb = summary["text_bytes"] / 1e6
    rate = mb / summary["encode_seconds"] if summary["encode_seconds"] > 0 else float("inf")
    if summary["splits"]["val_bytes"]["files"]:
        click.echo(f"sidecar: {_plural(len(summary['splits']['val_bytes']['files']), 'byte sidecar')} "
                   "(fineweb_val_bytes_*.bin: BPB counts the original text's bytes)")
    click.echo(f"shards:    {summary['dataset_dir']}")
    click.echo(f"tokenizer: {summary['tokenizer_model']}")
    click.echo(f"manifest:  {summary['manifest']}")
    click.echo(f"encoded {mb:,.1f} MB of text in {summary['encode_seconds']:.1f} s ({rate:,.1f} MB/s, "
               f"{_plural(summary['workers'], 'worker')}); total {summary['seconds']:.1f} s")


@data.command("download")
@click.argument("train_shards_arg", metavar="[TRAIN_SHARDS]", required=False, type=int)
@click.option("--variant", default="sp1024", show_default=True,
              help="Tokenization: sp<V> (sp1024, sp4096, sp8192, ...) or byte260 -> datasets/fineweb10B_<variant>; "
                   "sp8192-caseops = the Hub's sp8192_lossless_caps_caseops_v1_reserved (CaseOps, with the "
                   "validation byte sidecars; repo romeerp/parameter-golf-caseops-v1).")
@click.option("--train-shards", type=int, default=None,
              help="Number of train shards (100M tokens each) to fetch; at most the manifest's stats.files_train. "
                   "All validation shards and the tokenizer are always fetched. [default: 80]")
@click.option("--out", "out_dir", default="data", show_default=True, type=click.Path(file_okay=False, path_type=str),
              help="Local data root.")
@click.option("--repo-id", default=None,
              help="HF dataset repo. [default: MATCHED_FINEWEB_REPO_ID, else by variant: sp1024 -> "
                   "willdepueoai/parameter-golf, sp4096/sp8192 -> kevclark/parameter-golf; "
                   "InAbsentia/parameter-golf-sp4096 is an alternative for sp4096]")
@click.option("--remote-root", default=None,
              help="Folder inside the repo that holds manifest.json. [default: MATCHED_FINEWEB_REMOTE_ROOT_PREFIX, "
                   "else 'datasets']")
@click.option("--revision", default="main", show_default=True, help="Repo branch, tag or commit.")
@click.option("--source", type=click.Path(file_okay=False, path_type=str), default=None,
              help="Copy/hard-link from this local folder laid out like the repo instead of the Hub "
                   "(a mirror, or another data root).")
@click.option("--with-docs", is_flag=True, help="Also fetch docs_selected.jsonl and its source manifest.")
@click.option("--skip-manifest", is_flag=True,
              help="Do not fetch manifest.json; use a local one if present, else assume the standard layout.")
@click.option("--refresh-manifest", is_flag=True,
              help="Fetch manifest.json again even if one exists locally (needed after switching repo).")
@click.option("--cache-dir", default=None, type=click.Path(file_okay=False, path_type=str),
              help="huggingface_hub cache folder. [default: HF_HUB_CACHE]")
@click.option("--no-progress", is_flag=True, help="No progress bars (they are drawn only on a terminal anyway).")
def download_cmd(train_shards_arg, variant, train_shards, out_dir, repo_id, remote_root, revision, source, with_docs,
                 skip_manifest, refresh_manifest, cache_dir, no_progress) -> None:
    """Download published shards + tokenizer from the Hugging Face Hub, driven by the repo's manifest.

    Files already present and valid are kept (shard headers are checked; broken ones are
    fetched again), so re-running resumes an interrupted download. Set HF_TOKEN for gated
    or private repos; HF_ENDPOINT selects another Hub endpoint. The repo a manifest came
    from is recorded in DIR/manifest.source.json; a manifest from another repo is refused.

    \b
    Examples:
      golf data download --variant sp1024 --train-shards 10
      golf data download --variant sp4096 --train-shards 80 --out data
      golf data download --variant sp4096 --repo-id InAbsentia/parameter-golf-sp4096 --refresh-manifest
      golf data download --variant sp8192-caseops --train-shards 80
    """
    from golf.data.download import DEFAULT_TRAIN_SHARDS, download_dataset

    if train_shards is not None and train_shards_arg is not None and train_shards != train_shards_arg:
        raise click.UsageError(f"TRAIN_SHARDS {train_shards_arg} and --train-shards {train_shards} disagree")
    n = train_shards if train_shards is not None else train_shards_arg
    n = DEFAULT_TRAIN_SHARDS if n is None else n
    try:
        res = download_dataset(variant=variant, train_shards=n, out_dir=out_dir, repo_id=repo_id,
                               remote_root=remote_root, source=source, with_docs=with_docs,
                               skip_manifest=skip_manifest, refresh_manifest=refresh_manifest, revision=revision,
                               cache_dir=cache_dir, progress=False if no_progress else None,
                               log=lambda m: click.echo(m, err=True))
    except OSError as e:
        raise click.ClickException(str(e)) from None
    for w in res.warnings:
        click.echo(f"warning: {w}", err=True)
    click.echo(f"source:    {res.source}")
    click.echo(f"files:     {len(res.fetched)} fetched, {len(res.refetched)} re-fetched (were invalid), "
               f"{len(res.skipped)} already present")
    click.echo(f"shards:    {res.dataset_dir} ({_plural(res.files_val, 'val shard')}, "
               f"{_plural(res.train_shards, 'train shard')})")
    if res.tokenizer_model:
        click.echo(f"tokenizer: {res.tokenizer_model}")


@data.command("check")
@click.argument("data_dir", metavar="DIR", type=click.Path(exists=True, file_okay=False, path_type=str))
def check_cmd(data_dir) -> None:
    """Report validation documents found in the training shards, for every dataset under DIR.

    DIR is a data root (its datasets/*/ are checked) or one dataset folder. A document is the
    tokens between two BOS tokens; each is hashed, and a training document with the hash of
    a validation document is reported. Exit status 1 when any dataset overlaps.

    \b
    Example:
      golf data check data
    """
    from pathlib import Path

    from golf.data.overlap import OverlapError, find_overlap
    from golf.data.shards import list_shards

    root = Path(data_dir)
    dirs = [root] if list_shards(root, "val") else sorted(
        d for d in (root / "datasets").glob("*") if d.is_dir() and list_shards(d, "val"))
    if not dirs:
        raise click.ClickException(f"{root}: no dataset with validation shards (fineweb_val_*.bin) here or in "
                                   f"{root / 'datasets'}/*/")
    bad = []
    for d in dirs:
        res = find_overlap(d, progress=lambda name, d=d: click.echo(f"  {d.name}/{name}", err=True))
        click.echo(res.line())
        bad += [res] if res.shared else []
    if bad:
        raise OverlapError(f"{len(bad)} of {len(dirs)} datasets have validation documents in their training shards")
