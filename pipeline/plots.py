"""Figures of a run: ``runs/<id>/history.png``, the loss and accuracy curves of ``history.json``.

One record per finished epoch (``models.train``): ``train_loss``, ``val_loss``, ``train_accuracy``,
``val_accuracy``. Two panels side by side, train and val in each; drawn with matplotlib's Agg
backend (no display needed).

>>> history = [{"epoch": 1, "train_loss": 0.9, "val_loss": 0.5, "train_accuracy": 0.7, "val_accuracy": 0.8},
...            {"epoch": 2, "train_loss": 0.4, "val_loss": 0.3, "train_accuracy": 0.9, "val_accuracy": 0.9}]
>>> curves(history)["loss"]["val"]
[0.5, 0.3]
"""
from __future__ import annotations

import json
from pathlib import Path

PANELS = {"loss": ("train_loss", "val_loss"), "accuracy": ("train_accuracy", "val_accuracy")}


def curves(history: list[dict]) -> dict[str, dict[str, list[float]]]:
    """Per panel (loss, accuracy), the train and val values by epoch (an absent figure is left out)."""
    out = {}
    for panel, (train, val) in PANELS.items():
        out[panel] = {name: [float(h[key]) for h in history] for name, key in (("train", train), ("val", val))
                      if all(key in h for h in history)}
    return out


def history_png(history: list[dict], path: Path, title: str = "") -> Path:
    """Draw the loss and accuracy curves of ``history`` into the PNG ``path``."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    epochs = [int(h["epoch"]) for h in history]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), dpi=90)
    for ax, (panel, lines) in zip(axes, curves(history).items()):
        for name, values in lines.items():
            ax.plot(epochs, values, marker="o", label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(panel)
        ax.set_title(panel)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


def write_history_png(run_dir: Path) -> Path | None:
    """``run_dir/history.png`` from ``run_dir/history.json``; None when the run has no history."""
    source = Path(run_dir) / "history.json"
    history = json.loads(source.read_text()) if source.is_file() else []
    if not history:
        return None
    return history_png(history, Path(run_dir) / "history.png", title=f"run {Path(run_dir).name}")
