"""Figures of a run: ``runs/<id>/history.png``, the loss and accuracy curves of ``history.json``.

One record per finished epoch (``models.train``): ``train_loss``, ``val_loss``, ``train_accuracy``,
``val_accuracy`` for a classifier; a language model (``models.lm``) has ``train_token_accuracy``,
``val_token_accuracy``, ``train_perplexity`` and ``val_perplexity`` instead of the accuracies. One
panel per figure the history has, side by side, train and val in each (perplexity on a log
scale); drawn with matplotlib's Agg backend (no display needed).

>>> history = [{"epoch": 1, "train_loss": 0.9, "val_loss": 0.5, "train_accuracy": 0.7, "val_accuracy": 0.8},
...            {"epoch": 2, "train_loss": 0.4, "val_loss": 0.3, "train_accuracy": 0.9, "val_accuracy": 0.9}]
>>> curves(history)["loss"]["val"]
[0.5, 0.3]
"""
from __future__ import annotations

import json
from pathlib import Path

PANELS = {"loss": ("train_loss", "val_loss"), "accuracy": ("train_accuracy", "val_accuracy"),
          "token accuracy": ("train_token_accuracy", "val_token_accuracy"),
          "perplexity": ("train_perplexity", "val_perplexity")}
LOG_SCALE = ("perplexity",)


def curves(history: list[dict]) -> dict[str, dict[str, list[float]]]:
    """Per panel (loss, accuracy, ...), the train and val values by epoch; an absent figure is left
    out, and a panel with neither."""
    out = {}
    for panel, (train, val) in PANELS.items():
        lines = {name: [float(h[key]) for h in history] for name, key in (("train", train), ("val", val))
                 if all(key in h for h in history)}
        if lines:
            out[panel] = lines
    return out


def history_png(history: list[dict], path: Path, title: str = "") -> Path:
    """Draw the curves of ``history`` (:func:`curves`) into the PNG ``path``."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    epochs = [int(h["epoch"]) for h in history]
    panels = curves(history)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.4), dpi=90, squeeze=False)
    for ax, (panel, lines) in zip(axes[0], panels.items()):
        for name, values in lines.items():
            ax.plot(epochs, values, marker="o", label=name)
        if panel in LOG_SCALE:
            ax.set_yscale("log")
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
