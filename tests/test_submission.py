"""End to end: `golf demo` (data build -> tiny training -> build -> clean verify -> records folder),
then `golf submit`, `golf plot` and the notebooks against what exists in the CLI."""
from __future__ import annotations

import json
import math
import re
import shlex
import shutil
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from golf.cli import main
from golf.submission import notebooks
from golf.verifier.lint.records import lint_folder

ROOT = Path(__file__).resolve().parents[1]


def _run(args, **kw):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False, **kw)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    r = _run(["demo", "--out", out, "--seeds", "1,2", "--iterations", "20", "--num-val-docs", "12", "-q"])
    assert r.exit_code == 0, r.output
    # a CPU run is not an 8xH100 run: the demo goes to the non-record track, however slow the machine
    assert not (out / "records" / "track_10min_16mb").exists()
    recs = list((out / "records" / "track_non_record_16mb").iterdir())
    assert len(recs) == 1
    return out, recs[0], r.output


@pytest.mark.slow  # a whole demo (train, build, verify, submit) as the fixture: the slow step
def test_demo_writes_a_verified_records_folder(demo):
    out, rec, output = demo
    assert sorted(p.name for p in rec.iterdir()) == ["README.md", "submission.json", "train_gpt.py",
                                                       "train_seed1.log", "train_seed2.log"]
    sub = json.loads((rec / "submission.json").read_text())
    for key in ("author", "github_id", "name", "date", "track", "val_bpb", "val_bpb_std", "seeds", "seed_results",
                "hardware", "pytorch_version", "technique_summary", "baseline"):
        assert key in sub, key
    assert sub["seeds"] == [1, 2]
    # every per-seed number is the clean re-scoring of that artifact, not the trainer's own claim
    per = []
    for seed in (1, 2):
        v = json.loads((out / "artifacts" / f"seed{seed}" / "verify.json").read_text())
        assert v["ok"] and v["score"]["kind"] == "sliding"
        got = sub["seed_results"][str(seed)]
        assert got["val_bpb"] == pytest.approx(v["score"]["val_bpb"], abs=1e-8)
        shipped = {f["path"]: f["size"] for f in v["inventory"]["files"]}  # verified sizes of code + blob
        assert got["artifact_bytes"] == shipped["train_gpt.py"] + shipped["final_model.int6.ptz"]
        per.append(got["val_bpb"])
    mean = sum(per) / 2
    assert sub["val_bpb"] == pytest.approx(mean, abs=1e-8)
    assert sub["val_bpb_std"] == pytest.approx(abs(per[0] - per[1]) / math.sqrt(2), abs=1e-8)
    # the tiny model learned something: better than a uniform distribution over 1024 tokens
    assert sub["val_loss"] < math.log(1024)
    # one train_gpt.py for both seeds, identical to what golf build wrote
    code = (rec / "train_gpt.py").read_bytes()
    assert code == (out / "artifacts" / "seed1" / "train_gpt.py").read_bytes()
    assert code == (out / "artifacts" / "seed2" / "train_gpt.py").read_bytes()
    readme = (rec / "README.md").read_text()
    assert f"{sub['val_bpb']:.8f}" in readme and "golf train --preset tiny" in readme and "golf build" in readme
    log1 = (rec / "train_seed1.log").read_text()
    assert "final_int6_sliding_window" in log1 and "Total submission size" in log1 and "command: golf train" in log1
    assert lint_folder(rec).ok
    assert "records" in output and f"{sub['val_bpb']:.8f}" in output
    # curves written per run
    for seed in (1, 2):
        png = out / "runs" / f"seed{seed}" / "curves.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sub["track"] == "non_record_16mb"
    r = _run(["verify", "--records", out / "records"])  # the deprecated alias still works
    assert r.exit_code == 0, r.output
    r = _run(["verify", "records", out / "records"])
    assert r.exit_code == 0 and "non_record_16mb" in r.output, r.output


@pytest.mark.slow  # a whole demo (train, build, verify, submit) as the fixture: the slow step
def test_submit_reuses_verification_and_refuses_to_overwrite(demo, tmp_path):
    out, _, _ = demo
    dest = tmp_path / "records" / "track_non_record_16mb" / "2026-11-25_Again"
    arts = [out / "artifacts" / "seed1", out / "artifacts" / "seed2"]
    args = ["submit", "--runs", *arts, "--name", "again", "--author", "A", "--github-id", "a", "--out", dest]
    r = _run(args)  # no --data: reuses ART/verify.json
    assert r.exit_code == 0, r.output
    sub = json.loads((dest / "submission.json").read_text())
    assert sub["seeds"] == [1, 2] and sub["author"] == "A"
    r = _run(args)
    assert r.exit_code == 1 and "already exists" in r.output
    r = _run(args + ["--force", "--hardware", "8xH100"])
    assert r.exit_code == 0, r.output
    assert json.loads((dest / "submission.json").read_text())["hardware"] == "8xH100"


@pytest.mark.slow  # a whole demo (train, build, verify, submit) as the fixture: the slow step
def test_submit_picks_the_track_from_the_runs(demo, tmp_path):
    out, _, _ = demo
    arts = [out / "artifacts" / "seed1", out / "artifacts" / "seed2"]
    base = ["submit", "--runs", *arts, "--name", "t", "--author", "A", "--github-id", "a"]
    asked = tmp_path / "records" / "track_10min_16mb" / "2026-11-25_Cpu"
    r = _run(base + ["--out", asked])
    assert r.exit_code == 0, r.output
    moved = tmp_path / "records" / "track_non_record_16mb" / "2026-11-25_Cpu"
    assert "track: non_record_16mb" in r.output and "1xCPU" in r.output and str(moved) in r.output
    assert not asked.exists() and json.loads((moved / "submission.json").read_text())["track"] == "non_record_16mb"
    r = _run(base + ["--out", tmp_path / "x" / "2026-11-25_Forced", "--track", "10min_16mb"])
    assert r.exit_code == 1 and "--track 10min_16mb contradicts the logs" in r.output and "1xCPU" in r.output
    assert not (tmp_path / "x").exists()


@pytest.mark.slow  # a whole demo (train, build, verify, submit) as the fixture: the slow step
def test_submit_leaves_nothing_when_the_lint_fails(demo, tmp_path):
    out, _, _ = demo
    parent = tmp_path / "records" / "track_non_record_16mb"
    dest = parent / "2026-11-25_NotBetter"
    # claims to beat a baseline far better than the tiny model: the significance test fails
    r = _run(["submit", "--runs", out / "artifacts" / "seed1", "--runs", out / "artifacts" / "seed2",
              "--name", "x", "--author", "A", "--github-id", "a", "--out", dest, "--against", "1.0"])
    assert r.exit_code == 3, r.output
    assert "significance" in r.output
    assert not dest.exists() and list(parent.iterdir()) == []


@pytest.mark.slow  # a whole demo (train, build, verify, submit) as the fixture: the slow step
def test_submit_rejects_tampered_and_duplicate_runs(demo, tmp_path):
    out, _, _ = demo
    art = tmp_path / "seed1"
    shutil.copytree(out / "artifacts" / "seed1", art)
    with open(art / "final_model.int6.ptz", "ab") as f:
        f.write(b"\0")
    base = ["--name", "x", "--author", "A", "--github-id", "a"]
    r = _run(["submit", "--runs", art, *base, "--out", tmp_path / "r1"])
    assert r.exit_code == 1 and "final_model.int6.ptz changed since it was verified" in r.output
    assert not (tmp_path / "r1").exists()
    a1 = out / "artifacts" / "seed1"
    r = _run(["submit", "--runs", a1, a1, *base, "--out", tmp_path / "r2"])
    assert r.exit_code == 1 and "more than once" in r.output
    r = _run(["submit", "--runs", tmp_path, *base, "--out", tmp_path / "r3"])
    assert r.exit_code == 1 and "golf build" in r.output
    r = _run(["submit", "--runs", *base, "--out", tmp_path / "r4"])
    assert r.exit_code == 2 and "--runs needs at least one value" in r.output


@pytest.mark.slow  # a whole demo (train, build, verify, submit) as the fixture: the slow step
def test_plot_command(demo, tmp_path):
    out, _, _ = demo
    png = tmp_path / "c.png"
    r = _run(["plot", out / "runs" / "seed1", "--out", png])
    assert r.exit_code == 0, r.output
    assert png.read_bytes()[:4] == b"\x89PNG"
    r = _run(["plot", tmp_path])
    assert r.exit_code == 1 and "metrics.jsonl" in r.output


# ----------------------------------------------------------------------------- notebooks


@pytest.mark.parametrize("name", sorted(notebooks.NOTEBOOKS))
def test_notebooks_are_generated_and_valid(name):
    committed = (ROOT / "notebooks" / name).read_text(encoding="utf-8")
    assert committed == notebooks.render(name), f"notebooks/{name} is stale: python -m golf.submission.notebooks"
    nbformat = pytest.importorskip("nbformat")
    nbformat.validate(nbformat.reads(committed, as_version=4))


def _check_against_cli(argv: list[str]) -> None:
    """Resolve subcommands and check every option exists and gets a value if it needs one."""
    cmd: click.Command = main
    args = list(argv)
    if args and args[0] in ("--version", "--help"):
        return
    while isinstance(cmd, click.Group):
        if args[0] not in cmd.commands and hasattr(cmd, "dispatch"):  # `golf verify PATH`: picked by PATH
            name, args, _ = cmd.dispatch(click.Context(cmd), args)
            args = [name, *args]
        sub = cmd.get_command(click.Context(cmd), args[0])
        assert sub is not None, f"no command {args[0]!r} in {shlex.join(argv)}"
        cmd, args = sub, args[1:]
    opts = {o: p for p in cmd.params if isinstance(p, click.Option) for o in p.opts + p.secondary_opts}
    n_args = sum(1 for p in cmd.params if isinstance(p, click.Argument))
    positional, i = 0, 0
    while i < len(args):
        a = args[i]
        if a.startswith("--"):
            assert a in opts, f"{a} is not an option of {shlex.join(argv[:2])}"
            p = opts[a]
            if not p.is_flag:
                assert i + 1 < len(args) and not args[i + 1].startswith("--"), f"{a} needs a value"
                i += 1
                while a in getattr(cmd, "many", ()) and i + 1 < len(args) and not args[i + 1].startswith("-"):
                    i += 1  # --runs A B C
        else:
            positional += 1
        i += 1
    assert positional <= n_args, f"too many arguments in {shlex.join(argv)}"
    # and click itself accepts the line (paths need not exist for this check)
    cmd.make_context(argv[0], list(args), resilient_parsing=True)


@pytest.mark.parametrize("name", sorted(notebooks.NOTEBOOKS))
def test_notebook_commands_exist_in_the_cli(name):
    nb = json.loads((ROOT / "notebooks" / name).read_text(encoding="utf-8"))
    cmds = notebooks.golf_commands(nb)
    assert any(c.startswith("golf train ") for c in cmds) and any(c.startswith("golf verify ") for c in cmds)
    for c in cmds:
        argv = shlex.split(c.replace("{HUB_REPO}", "user/repo"))[1:]
        _check_against_cli(argv)


def test_readme_commands_exist_in_the_cli():
    """Every `golf ...` line in the README's code blocks names real commands and options."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = text.split("```")[1::2]
    lines = []
    for b in blocks:
        joined = b.replace("\\\n", " ")
        for ln in joined.splitlines():
            ln = re.sub(r"^(#\s*)?(-\s*)?run:\s*", "", ln.strip())  # GitHub Actions steps too
            for part in ln.split("&&"):
                part = part.strip()
                if part.startswith("golf ") and "<" not in part:
                    lines.append(part.split(" #")[0])
    assert len(lines) >= 5
    assert any(ln.startswith("golf verify records") for ln in lines)  # the CI example
    for ln in lines:
        _check_against_cli(shlex.split(ln)[1:])


def _seed_run(seed: int, hardware: str, train_ms: float | None):
    from golf.submission.assemble import SeedRun
    return SeedRun(seed=seed, artifact_dir=Path("a"), run_dir=None, val_bpb=1.1, val_loss=1.9, metric="m",
                   roundtrip_bpb=None, artifact_bytes=1, code_bytes=1, blob_bytes=1, log_text="", code=b"",
                   hardware=hardware, train_time_ms=train_ms)


def test_track_choice_follows_hardware_and_training_time(tmp_path):
    from golf.submission.assemble import SubmitError, choose_track
    out = tmp_path / "records" / "track_10min_16mb" / "2026-11-25_X"
    msgs: list[str] = []
    h100 = "8xNVIDIA H100 80GB HBM3"
    assert choose_track([_seed_run(1, h100, 590_000), _seed_run(2, h100, 599_900)], out, None, msgs.append) == \
        ("10min_16mb", out) and not msgs
    # a slow machine (the demo took 1,626 s) or another GPU goes to the non-record track, and says so
    for runs, why in (([_seed_run(1, h100, 1_626_000)], "trained 1626 s, over 600 s"),
                      ([_seed_run(1, "2xTesla T4", 500_000)], "ran on 2xTesla T4, not 8xH100"),
                      ([_seed_run(1, "1xNVIDIA H100 80GB HBM3", 500_000)], "not 8xH100"),
                      ([_seed_run(1, "", 500_000)], "hardware not recorded")):
        msgs.clear()
        key, path = choose_track(runs, out, None, msgs.append)
        assert key == "non_record_16mb" and path == tmp_path / "records" / "track_non_record_16mb" / out.name
        assert any(why in m for m in msgs) and any(str(path) in m for m in msgs)
        with pytest.raises(SubmitError, match="--track 10min_16mb contradicts the logs: .*" + why.split(",")[0][:12]):
            choose_track(runs, out, "10min_16mb", msgs.append)
    # an explicit non-record choice is always allowed; a folder outside records/ keeps its path
    other = tmp_path / "elsewhere" / "X"
    assert choose_track([_seed_run(1, h100, 590_000)], other, "non_record_16mb", msgs.append) == \
        ("non_record_16mb", other)
