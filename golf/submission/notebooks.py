"""Generate the Kaggle (2×T4) and Colab (1×T4) notebooks in ``notebooks/``.

The notebooks are data, not hand-kept code: ``python -m golf.submission.notebooks``
rewrites them, and a test checks that the committed files match this generator, are
valid nbformat v4, and that every ``golf`` command in them parses against the CLI.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def _md(text: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": text.strip("\n").splitlines(keepends=True)}


def _code(text: str) -> dict:
    return {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
            "source": text.strip("\n").splitlines(keepends=True)}


def _notebook(cells: list[dict]) -> dict:
    for i, c in enumerate(cells):  # nbformat 4.5 wants stable cell ids
        c["id"] = f"cell-{i:02d}"
    kernel = {"display_name": "Python 3", "language": "python", "name": "python3"}
    return {"cells": cells, "metadata": {"kernelspec": kernel, "language_info": {"name": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


INSTALL = '''
# Where to install golf from: a git URL of your fork, or a path to an uploaded checkout.
GOLF_SRC = "git+https://github.com/YOUR-USER/golf.git"
%pip install -q "{GOLF_SRC}"
!golf --version
'''

HUB = '''
# Checkpoints are pushed to a private Hub model repo so a killed session can resume.
import os
HUB_REPO = "YOUR-USER/golf-checkpoints"   # created on first push
{secret}
'''


def kaggle() -> dict:
    w = "/kaggle/working"
    return _notebook([
        _md("""
# golf on Kaggle (2×T4)

Trains the seed recipe (SP4096, 11 layers, recurrence, parallel lanes) on two T4s with
`torchrun` (fp16, SDPA attention), checkpoints to the Hugging Face Hub so the 12-hour
preset survives session restarts, then packs and verifies a 16,000,000-byte artifact.
Enable *GPU T4 ×2* and *Internet*, and add a Kaggle secret `HF_TOKEN` (write access).
Presets: `kaggle-quick` (600 s), `kaggle-1h`, `kaggle-12h`.
"""),
        _code(INSTALL),
        _code(HUB.format(secret='from kaggle_secrets import UserSecretsClient\n'
                                'os.environ["HF_TOKEN"] = UserSecretsClient().get_secret("HF_TOKEN")')),
        _code(f"!golf data download --variant sp4096 --train-shards 10 --out {w}/data"),
        _md("Train on both GPUs. `--resume auto` continues from the newest local checkpoint; "
            "after a restart use `--resume-from-hub {HUB_REPO}` instead."),
        _code(f"!golf train --preset kaggle-quick --data {w}/data --run-dir {w}/runs/seed1337 --seed 1337 "
              f"--nproc 2 --hub-repo {{HUB_REPO}} --resume auto"),
        _code(f"!golf plot {w}/runs/seed1337"),
        _code(f"!golf build --checkpoint {w}/runs/seed1337 --data {w}/data --out {w}/artifact"),
        _code(f"!golf verify {w}/artifact --data {w}/data --device cuda --json {w}/verify.json"),
    ])


def colab() -> dict:
    w = "/content"
    return _notebook([
        _md("""
# golf on Colab (1×T4)

Single-T4 run of the seed recipe (fp16, SDPA attention) with Hub checkpointing so a
disconnected runtime can resume, then artifact build and clean-process verification.
Runtime → *T4 GPU*; add a Colab secret `HF_TOKEN` (write access).
Presets: `colab-quick` (600 s), `colab-1h`, `colab-max` (10 h).
"""),
        _code(INSTALL),
        _code(HUB.format(secret='from google.colab import userdata\n'
                                'os.environ["HF_TOKEN"] = userdata.get("HF_TOKEN")')),
        _code(f"!golf data download --variant sp4096 --train-shards 10 --out {w}/data"),
        _md("After a disconnect, re-run the cells above and then this one with "
            "`--resume-from-hub {HUB_REPO}` added."),
        _code(f"!golf train --preset colab-quick --data {w}/data --run-dir {w}/runs/seed1337 --seed 1337 "
              f"--hub-repo {{HUB_REPO}} --resume auto"),
        _code(f"!golf plot {w}/runs/seed1337"),
        _code(f"!golf build --checkpoint {w}/runs/seed1337 --data {w}/data --out {w}/artifact"),
        _code(f"!golf verify {w}/artifact --data {w}/data --device cuda --json {w}/verify.json"),
    ])


NOTEBOOKS = {"kaggle_2xT4.ipynb": kaggle, "colab_1xT4.ipynb": colab}


def render(name: str) -> str:
    return json.dumps(NOTEBOOKS[name](), indent=1, ensure_ascii=False) + "\n"


def write_all(out_dir: str | Path) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in NOTEBOOKS:
        p = out / name
        p.write_text(render(name), encoding="utf-8")
        paths.append(p)
    return paths


def golf_commands(nb: dict) -> list[str]:
    """The ``golf ...`` command lines in a notebook's code cells (``!golf`` shell escapes)."""
    cmds = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        for line in "".join(cell["source"]).splitlines():
            line = line.strip()
            if line.startswith("!golf "):
                cmds.append(line[1:])
    return cmds


if __name__ == "__main__":
    for p in write_all(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "notebooks"):
        print(p)
