"""The data-quality report of a prepared dataset: ``report.json`` and ``report.html`` (PNG histograms
embedded as base64). :func:`lazy_stats` builds the Dask reductions; the caller computes them.

Table rows are described by their value columns ``p0..pN``; text rows by their lengths
(:func:`text_lengths`: ``n_tokens`` and ``n_chars`` of the cleaned text)."""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd

from pipeline.transforms.text import tokenize

N_HISTOGRAMS = 3
BINS = 32
SIGNIFICANT = 12   # digits kept of each statistic in report.json


def _round(x: float) -> float:
    """``x`` to ``SIGNIFICANT`` digits: the last bits of a float sum are noise, not information.

    The reduction tree is fixed by the partitioning (which does not depend on the workers), so the
    statistics are already reproducible; rounding keeps report.json stable across platforms too.
    """
    return float(f"{x:.{SIGNIFICANT}g}") if np.isfinite(x) else float(x)


def value_columns(rows: dd.DataFrame) -> list[str]:
    return [c for c in rows.columns if c.startswith("p") and c[1:].isdigit()]


TEXT_COLUMNS = ["n_tokens", "n_chars"]


def _lengths(frame: pd.DataFrame) -> pd.DataFrame:
    texts = frame["text"].fillna("")
    return pd.DataFrame({"label": frame["label"], "n_tokens": texts.map(lambda t: len(tokenize(t))).astype("int64"),
                         "n_chars": texts.str.len().astype("int64")}, index=frame.index)


def text_lengths(rows: dd.DataFrame) -> dd.DataFrame:
    """``label``, ``n_tokens`` and ``n_chars`` per text row (lazy): the columns a text report describes."""
    return rows.map_partitions(_lengths, meta=_lengths(rows._meta), token="report-text-lengths")


def lazy_stats(rows: dd.DataFrame, columns: list[str] | None = None) -> dict:
    """Per-column mean/std/min/max and the label counts, as lazy Dask objects (``columns``: default
    the value columns)."""
    cols = columns or value_columns(rows)
    values = rows[cols]
    return {"label_counts": rows["label"].value_counts(), "mean": values.mean(), "std": values.std(),
            "min": values.min(), "max": values.max()}


def lazy_histograms(rows: dd.DataFrame, stats: dict, columns: list[str] | None = None) -> dict:
    """Histograms of the ``N_HISTOGRAMS`` columns with the largest std, and (value columns only) of
    the per-row mean."""
    cols = columns or value_columns(rows)
    std = np.nan_to_num(np.asarray(stats["std"], dtype="float64"))
    chosen = [cols[i] for i in np.argsort(-std, kind="stable")[:N_HISTOGRAMS]]
    out = {}
    for c in chosen:
        lo, hi = float(np.asarray(stats["min"])[cols.index(c)]), float(np.asarray(stats["max"])[cols.index(c)])
        arr = rows[c].to_dask_array().astype("float64")
        out[f"column {c}"] = da.histogram(arr, bins=BINS, range=(lo, hi if hi > lo else lo + 1))
    if columns is not None:
        return out
    row_mean = rows[cols].astype("float64").mean(axis=1).to_dask_array()
    lo, hi = float(np.min(stats["min"])), float(np.max(stats["max"]))
    out["per-row mean"] = da.histogram(row_mean, bins=BINS, range=(lo, hi if hi > lo else lo + 1))
    return out


def build(manifest: dict, stats: dict, label_names: dict[int, str]) -> dict:
    """The JSON report from the manifest's counts and computed statistics."""
    cols = list(stats["mean"].index)
    per_column = {c: {k: _round(float(stats[k][c])) for k in ("mean", "std", "min", "max")} for c in cols}
    labels = {label_names.get(int(k), str(k)): int(v) for k, v in sorted(stats["label_counts"].items())}
    keys = ("dataset", "version", "records_in", "records_out", "quarantined", "duplicates_dropped",
            "cleaning", "n_train", "n_val", "n_test")
    return {**{k: manifest.get(k) for k in keys}, "label_distribution": labels, "columns": per_column}


def _png(title: str, counts: np.ndarray, edges: np.ndarray) -> str:
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    fig, ax = plt.subplots(figsize=(4, 2.6), dpi=80)
    ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge")
    ax.set_title(title, fontsize=9)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _table(rows: list[tuple], head: tuple) -> str:
    th = "".join(f"<th>{html.escape(str(h))}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def render_html(report: dict, histograms: dict) -> str:
    labels = report["label_distribution"]
    lab_png = _png("label distribution", np.array(list(labels.values())), np.arange(len(labels) + 1) - 0.5)
    imgs = [f'<img alt="label distribution" src="data:image/png;base64,{lab_png}">']
    for name, (counts, edges) in histograms.items():
        imgs.append(f'<img alt="{html.escape(name)}" src="data:image/png;base64,'
                    f'{_png(name, np.asarray(counts), np.asarray(edges))}">')
    counts = [(k, report[k]) for k in ("records_in", "records_out", "duplicates_dropped")]
    counts += [(f"quarantined: {k}", v) for k, v in sorted(report["quarantined"].items())]
    cols = sorted(report["columns"].items(), key=lambda kv: -kv[1]["std"])[:20]
    col_rows = [(c, *(f"{s[k]:.3f}" for k in ("mean", "std", "min", "max"))) for c, s in cols]
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(str(report['dataset']))}@"
            f"{html.escape(str(report['version']))} data quality</title><style>body{{font-family:sans-serif}}"
            "td,th{padding:2px 8px;text-align:right}</style></head><body>"
            f"<h1>Data quality: {html.escape(str(report['dataset']))}@{html.escape(str(report['version']))}</h1>"
            f"<h2>Records</h2>{_table(counts, ('count', 'records'))}"
            f"<h2>Labels</h2>{_table(list(labels.items()), ('label', 'rows'))}"
            f"<h2>Histograms</h2>{''.join(imgs)}"
            f"<h2>Columns (20 with the largest std; all in report.json)</h2>"
            f"{_table(col_rows, ('column', 'mean', 'std', 'min', 'max'))}</body></html>")


def write(folder: Path, report: dict, histograms: dict) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.html`` into ``folder``."""
    json_path, html_path = folder / "report.json", folder / "report.html"
    json_path.write_text(json.dumps(report, indent=1) + "\n")
    html_path.write_text(render_html(report, histograms))
    return json_path, html_path
