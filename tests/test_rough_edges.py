"""The rough edges found when golf was tried as a new user would (issue 17), and golf's one error base.

Each test drives the real command (click's CliRunner, or a subprocess where a signal or a clean
interpreter is needed) on real data: the sp1024 sample dataset of ``tiny_data`` and a tiny model
trained by golf's own loop.
"""
from __future__ import annotations

import importlib
import inspect
import io
import json
import os
import pkgutil
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import golf
from golf.cli import main
from golf.errors import GolfError

REPO = Path(__file__).resolve().parents[1]
VAL_TOKENS = 2048


def cli(args, **kw):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False, **kw)


def subprocess_env() -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for k in ("ITERATIONS", "TRAIN_SEQ_LEN", "RANK", "WORLD_SIZE", "LOCAL_RANK", "RESUME_FROM_HUB", "HUB_REPO"):
        env.pop(k, None)
    return env


@pytest.fixture(scope="module")
def short_run(tiny_data, tmp_path_factory):
    """4 steps of the tiny preset by `golf train` (real loop, real shards): a run for build and plot."""
    run = tmp_path_factory.mktemp("short_run")
    sets = {"train.ema_start_step": 2, "quant.small_tensor_numel": 1024, "quant.calibration_batch_tokens": 2048,
            "quant.calibration_batches": 2}
    res = cli(["train", "--preset", "tiny", "--data", tiny_data["data_dir"], "--run-dir", run, "--device", "cpu",
               "--iterations", 4, "--warmdown-iters", 2, "--train-batch-tokens", 1024, "--val-max-tokens", VAL_TOKENS,
               "--val-loss-every", 0, "--no-progress", *[x for k, v in sets.items() for x in ("--set", f"{k}={v}")]],
              env={"ITERATIONS": None, "TRAIN_SEQ_LEN": None})
    assert res.exit_code == 0, res.output
    return run


# -- one error base ---------------------------------------------------------------------------------
def test_every_golf_exception_derives_from_golf_error():
    found = {}
    for mod in pkgutil.walk_packages(golf.__path__, "golf."):
        m = importlib.import_module(mod.name)
        for name, obj in vars(m).items():
            if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == mod.name:
                found[f"{mod.name}.{name}"] = obj
    assert len(found) >= 15, sorted(found)
    assert [k for k, c in found.items() if not issubclass(c, GolfError)] == []
    names = [k.rsplit(".", 1)[1] for k in found]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []  # e.g. no second BuildError
    # the builtin each one was before still catches it
    from golf.config import ConfigError
    from golf.data.build import DatasetError
    from golf.device import RunError
    assert issubclass(ConfigError, ValueError) and issubclass(DatasetError, ValueError)
    assert issubclass(RunError, RuntimeError)


def test_cli_group_reports_a_golf_error_as_one_line(tmp_path):
    res = cli(["data", "build", "--docs", tmp_path / "missing.jsonl", "--vocab-size", 1024, "--out", tmp_path / "d"])
    assert res.exit_code == 1
    assert res.output.strip().splitlines() == [f"Error: {tmp_path / 'missing.jsonl'}: document file not found"]


# -- golf build --target-bytes -----------------------------------------------------------------------
def test_build_refuses_a_target_that_is_not_positive(short_run, tiny_data, tmp_path):
    from golf.builder.build import BuildError, build

    for bad in ("-5", "0"):
        res = cli(["build", "--checkpoint", short_run, "--data", tiny_data["data_dir"], "--out", tmp_path / "a",
                   "--target-bytes", bad])
        assert res.exit_code == 2 and "--target-bytes" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "a").exists()
    with pytest.raises(BuildError, match="--target-bytes -5: the target must be a positive number"):
        build(short_run, tiny_data["data_dir"], tmp_path / "b", target_bytes=-5, device="cpu", log=lambda _m: None)
    assert not (tmp_path / "b").exists()


def test_build_warns_on_an_unreachable_target_and_says_what_next(short_run, tiny_data, tmp_path):
    """No -q: the bars must still stay out of output that is not a terminal."""
    art = tmp_path / "art"
    res = cli(["build", "--checkpoint", short_run, "--data", tiny_data["data_dir"], "--out", art, "--device", "cpu",
               "--val-max-tokens", VAL_TOKENS, "--target-bytes", 1000])
    assert res.exit_code == 0, res.output
    report = json.loads((art / "build_report.json").read_text())
    assert report["pruning"]["pruned"] == report["pruning"]["candidates"] > 0
    assert report["warnings"] and "--target-bytes 1,000 is unreachable" in report["warnings"][0]
    assert f"warning: --target-bytes 1,000 is unreachable: pruning {report['pruning']['pruned']:,}" in res.output
    assert f"artifact:  {art} (train_gpt.py, final_model.int6.ptz, build_report.json)" in res.output
    assert f"next:      golf verify {art} --data {tiny_data['data_dir']}" in res.output
    assert "\r" not in res.output and "calibration" not in res.output  # no tqdm frames off a terminal


def test_build_warns_when_the_target_takes_most_of_the_pm1_values(short_run, tiny_data):
    from golf.builder import container, entry, quant
    from golf.builder.build import _target_warnings
    from golf.model.gpt import CONTROL_PATTERNS
    from golf.trainer.checkpoint import load_final_full

    cfg, state, rec = load_final_full(short_run)
    model = entry.build_model(cfg, state, rec, "cpu")
    arrays, qmeta, info, hessians = quant.quantize_model(model, cfg, tiny_data["dataset_dir"], CONTROL_PATTERNS)
    meta, q = quant.blob_meta(cfg, qmeta, rec), cfg.quant
    cands = quant.prune_candidates(arrays, qmeta, info, hessians)
    all_pruned = len(container.pack(quant.apply_pruning(arrays, cands, len(cands[1])), meta, q.compressor,
                                    q.byte_shuffle))
    untouched = len(container.pack(arrays, meta, q.compressor, q.byte_shuffle))
    q.target_bytes = all_pruned + (untouched - all_pruned) // 10  # 90% of the way to "everything pruned"
    blob, _, prune_info = quant.pack_to_target(arrays, qmeta, info, hessians, meta, q, 0)
    assert len(blob) <= q.target_bytes and prune_info["pruned"] > prune_info["candidates"] / 2
    (warning,) = _target_warnings(prune_info, len(blob))
    assert f"zeroing {prune_info['pruned']:,} of {prune_info['candidates']:,} +-1 values" in warning
    q.target_bytes = untouched + 1  # fits unpruned: nothing to say
    blob, _, prune_info = quant.pack_to_target(arrays, qmeta, info, hessians, meta, q, 0)
    assert prune_info["pruned"] == 0 and _target_warnings(prune_info, len(blob)) == []


# -- golf plot / golf submit ---------------------------------------------------------------------------
def test_plot_into_a_missing_folder_is_a_one_line_error(short_run, tmp_path):
    res = cli(["plot", short_run, "--out", "/no/such/dir/x.png"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert res.output.strip() == "Error: --out /no/such/dir/x.png: folder /no/such/dir does not exist (create it first)"
    res = cli(["plot", short_run, "--out", tmp_path / "x.png"])
    assert res.exit_code == 0 and (tmp_path / "x.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("flag", ["--name", "--author", "--github-id"])
def test_submit_refuses_empty_names(tmp_path, flag):
    args = {"--name": "My entry", "--author": "Ada", "--github-id": "ada", flag: "  "}
    flags = [x for kv in args.items() for x in kv]
    res = cli(["submit", "--runs", tmp_path / "art", *flags, "--out", tmp_path / "rec"])
    assert res.exit_code == 2 and f"Invalid value for '{flag}': must not be empty" in res.output
    assert not (tmp_path / "rec").exists()


# -- golf train -----------------------------------------------------------------------------------------
def test_warmdown_longer_than_the_run_is_warned():
    from golf.presets import preset_config
    from golf.trainer.cli import schedule_warnings

    cfg = preset_config("tiny")
    assert schedule_warnings(cfg.train) == []  # 200 iterations, warmdown 60
    cfg.train.iterations = 30
    (w,) = schedule_warnings(cfg.train)
    assert "warmdown_iters=60 >= iterations=30" in w and "starts at 50%" in w and "--warmdown-iters 9" in w
    cfg.train.warmdown_frac = 0.5  # fraction warmdown: warmdown_iters is not used
    assert schedule_warnings(cfg.train) == []


def test_train_checks_shards_before_loading_torch(tiny_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_data["data_dir"], data)
    bad = data / "datasets" / "fineweb10B_sp1024" / "fineweb_train_000099.bin"
    bad.write_bytes(b"\0" * 100)
    code = ("import sys\nfrom golf.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
            "    print('exit', e.code, 'torch imported:', 'torch' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code, "train", "--preset", "tiny", "--data", str(data),
                           "--run-dir", str(tmp_path / "run"), "--device", "cpu"],
                          capture_output=True, text=True, env=subprocess_env(), timeout=120)
    assert f"Error: {bad}: truncated header (100 of 1024 bytes)" in proc.stderr
    assert "exit 1 torch imported: False" in proc.stdout
    assert not (tmp_path / "run").exists()


def test_ctrl_c_saves_a_checkpoint_and_the_printed_command_continues(tiny_data, tmp_path):
    from golf.data.loader import load_val_tokens
    from golf.trainer import checkpoint as ckpt

    run = tmp_path / "run"
    args = ["train", "--preset", "tiny", "--data", str(tiny_data["data_dir"]), "--run-dir", str(run),
            "--device", "cpu", "--iterations", "12", "--train-batch-tokens", "1024", "--val-max-tokens",
            str(VAL_TOKENS), "--set", "train.val_batch_tokens=2048", "--train-log-every", "1", "--no-progress"]
    proc = subprocess.Popen([sys.executable, "-m", "golf", *args], cwd=tmp_path, env=subprocess_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("step:2/12 "):
            proc.send_signal(signal.SIGINT)
            break
    out = "".join(lines) + proc.communicate(timeout=300)[0]
    assert proc.returncode == 130, out
    assert "Traceback" not in out and "Aborted" not in out
    assert "warning: warmdown_iters=60 >= iterations=12" in out  # the tiny preset's warmdown at 12 steps
    (stopped,) = [ln for ln in out.splitlines() if ln.startswith("interrupted at step ")]
    step = int(stopped.split()[3].split("/")[0])
    path = ckpt.checkpoint_path(run, step)
    assert stopped == f"interrupted at step {step}/12: checkpoint {path}" and step >= 2
    assert ckpt.load_checkpoint(path)["step"] == step and ckpt.list_checkpoints(run) == [(step, path)]
    (cont,) = [ln.split("continue:", 1)[1].strip() for ln in out.splitlines() if ln.startswith("continue:")]
    assert cont == shlex.join(["golf", *args, "--resume", "auto"])

    argv = shlex.split(cont)
    assert argv[0] == "golf"
    done = subprocess.run([sys.executable, "-m", "golf", *argv[1:]], cwd=tmp_path, env=subprocess_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"resumed: {path} step:{step}/12" in done.stdout
    # partial validation is labelled with both token counts
    ds, seq_len = tiny_data["dataset_dir"], 128
    n, full = len(load_val_tokens(ds, seq_len, max_tokens=VAL_TOKENS)) - 1, len(load_val_tokens(ds, seq_len)) - 1
    (final,) = [ln for ln in done.stdout.splitlines() if ln.startswith("final_model ")]
    assert final.endswith(f"ms (partial: {n:,} of {full:,} val tokens)") and n < full
    assert f"run:       {run} (final_model.pt" in done.stdout
    data = tiny_data["data_dir"]
    assert f"next:      golf build --checkpoint {run} --data {data} --out artifacts/NAME" in done.stdout


def test_full_validation_set_gets_no_partial_label(tiny_data):
    from golf.data.loader import load_val_tokens
    from golf.trainer.loop import partial_val_label

    ds = tiny_data["dataset_dir"]
    assert partial_val_label(ds, load_val_tokens(ds, 128), 128) == ""
    assert partial_val_label(ds, load_val_tokens(ds, 128, max_tokens=1024), 128).startswith(" (partial: 1,024 of ")


# -- golf data -------------------------------------------------------------------------------------------
def test_download_without_network_fails_at_once_and_leaves_nothing(tmp_path, monkeypatch):
    from huggingface_hub import constants

    out = tmp_path / "data"
    # HF_ENDPOINT and HF_HUB_CACHE as huggingface_hub read them at import time
    monkeypatch.setattr(constants, "ENDPOINT", "https://no-such-host.invalid")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    env = {"HTTPS_PROXY": None, "https_proxy": None, "ALL_PROXY": None, "all_proxy": None}
    res = CliRunner().invoke(main, ["data", "download", "--variant", "sp1024", "--train-shards", "1", "--out",
                                    str(out), "--no-progress"], env=env)
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "cannot resolve no-such-host.invalid" in res.output and "--source DIR" in res.output
    assert "Retrying" not in res.output  # huggingface_hub's ~24 s of retries never start
    assert not out.exists()


def test_download_from_a_folder_names_the_folder(tiny_data, tmp_path):
    src = tmp_path / "mirror"
    shutil.copytree(tiny_data["data_dir"], src)
    manifest = json.loads((src / "manifest.json").read_text())
    assert [d["name"] for d in manifest["datasets"]] == ["fineweb10B_sp1024"]
    res = cli(["data", "download", "--variant", "sp4096", "--source", src, "--out", tmp_path / "o1", "--no-progress"])
    assert res.exit_code == 1 and f"Error: {src}: the manifest has no dataset fineweb10B_sp4096" in res.output
    assert "parameter-golf" not in res.output  # no Hub repo in an error about a folder
    res = cli(["data", "download", "--variant", "sp1024", "--train-shards", 99, "--source", src, "--out",
               tmp_path / "o2", "--no-progress"])
    assert res.exit_code == 1 and f"train shards {src} has for sp1024" in res.output
    res = cli(["data", "download", "--source", tmp_path / "nowhere", "--out", tmp_path / "o3"])
    assert res.exit_code == 1 and f"{tmp_path / 'nowhere'}: source folder not found" in res.output
    assert not (tmp_path / "o3").exists()


def test_data_build_docs_sample_works_from_any_folder(tiny_data, tmp_path, monkeypatch):
    from golf.data.build import SAMPLE_DOCS, check_doc_files

    monkeypatch.chdir(tmp_path)
    assert check_doc_files(["sample"]) == [SAMPLE_DOCS] and SAMPLE_DOCS.is_file()
    res = cli(["data", "build", "--docs", "sample", "--vocab-size", 1024, "--num-val-docs", 60, "--out", "d",
               "--tokenizer", tiny_data["tokenizer"], "--workers", 1, "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "val:   60 docs" in res.output
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["datasets"][0]["stats"]["docs_val"] == 60


# -- progress bars ---------------------------------------------------------------------------------------
def test_one_progress_idiom_off_the_terminal_unless_forced():
    from golf.progress import maybe_tqdm

    items = [1, 2, 3]
    assert maybe_tqdm(items, False) is items and maybe_tqdm(None, False) is None
    quiet, loud = io.StringIO(), io.StringIO()  # StringIO is not a terminal
    assert list(maybe_tqdm(items, None, file=quiet, desc="x")) == items
    assert list(maybe_tqdm(items, True, file=loud, desc="x")) == items
    assert quiet.getvalue() == "" and "\r" in loud.getvalue() and "3/3" in loud.getvalue()
