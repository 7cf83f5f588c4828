"""Loss / BPB curves of a training run as a PNG (``golf plot RUN``)."""
from __future__ import annotations

import json
from pathlib import Path

from golf.errors import GolfError


class PlotError(ValueError, GolfError):
    """A run without plottable metrics, or an output path that cannot be written; the message names it."""


def read_metrics(run_dir: str | Path) -> tuple[list[tuple[int, float]], list[tuple[int, float, float]]]:
    """(train points (step, loss), val points (step, loss, bpb)) from RUN/metrics.jsonl."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise PlotError(f"{path}: not found (is {run_dir} a `golf train` run directory?)")
    train, val = [], []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise PlotError(f"{path}:{lineno}: not JSON ({e.msg})") from None
        step = rec.get("step")
        if step is None:
            continue
        if rec.get("train_loss") is not None:
            train.append((int(step), float(rec["train_loss"])))
        if rec.get("val_bpb") is not None:
            val.append((int(step), float(rec.get("val_loss", float("nan"))), float(rec["val_bpb"])))
    if not train and not val:
        raise PlotError(f"{path}: no train_loss or val_bpb records")
    return train, val


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write ``RUN/curves.png`` (or ``out``): train loss and val BPB against step."""
    train, val = read_metrics(run_dir)
    out = Path(out) if out else Path(run_dir) / "curves.png"
    if not out.parent.is_dir():
        raise PlotError(f"--out {out}: folder {out.parent} does not exist (create it first)")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotError("plotting needs matplotlib: pip install 'golf[plot]'") from None
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    if train:
        ax.plot([s for s, _ in train], [v for _, v in train], lw=1.2, color="tab:blue", label="train loss (nats)")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if val:
        ax2 = ax.twinx()
        ax2.plot([s for s, _, _ in val], [b for _, _, b in val], "o-", color="tab:red", ms=4, label="val BPB")
        ax2.set_ylabel("val bits per byte")
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
        best = min(val, key=lambda r: r[2])
        ax.set_title(f"{Path(run_dir).name}: best val BPB {best[2]:.4f} at step {best[0]}")
    else:
        ax.set_title(Path(run_dir).name)
    ax.legend(handles, labels, loc="upper right")
    fig.tight_layout()
    tmp = out.with_name(out.name + ".tmp.png")
    try:
        fig.savefig(tmp)
        tmp.replace(out)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise PlotError(f"--out {out}: cannot write ({e.strerror or e})") from None
    finally:
        plt.close(fig)
    return out
