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

from pipeline.features import SPLITS
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
    # Few labels: one output partition, no shuffle (dask-expr's default shuffles, ~0.5 s on a small input)
    return {"label_counts": rows["label"].value_counts(split_out=1), "mean": values.mean(), "std": values.std(),
            "min": values.min(), "max": values.max()}


def lazy_split_by_label(rows: dd.DataFrame):
    """Rows per (split code, label code), lazy: the report's split x class table."""
    return rows.groupby(["split", "label"]).size(split_out=1)


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


def build(manifest: dict, stats: dict, label_names: dict[int, str], split_by_label=None) -> dict:
    """The JSON report from the manifest's counts and computed statistics (``split_by_label``: the
    computed :func:`lazy_split_by_label`)."""
    cols = list(stats["mean"].index)
    per_column = {c: {k: _round(float(stats[k][c])) for k in ("mean", "std", "min", "max")} for c in cols}
    labels = {label_names.get(int(k), str(k)): int(v) for k, v in sorted(stats["label_counts"].items())}
    keys = ("dataset", "version", "records_in", "records_out", "quarantined", "duplicates_dropped",
            "cleaning", "n_train", "n_val", "n_test")
    table = {}
    if split_by_label is not None:
        for (split, label), n in sorted(split_by_label.items()):
            name = SPLITS[int(split)] if 0 <= int(split) < len(SPLITS) else str(split)
            table.setdefault(name, {})[label_names.get(int(label), str(label))] = int(n)
    return {**{k: manifest.get(k) for k in keys}, "label_distribution": labels, "split_by_label": table,
            "gates": gate_rows(manifest), "masked": masked_counts(manifest), "columns": per_column}


def gate_rows(manifest: dict) -> list[dict]:
    """Each quality gate with its threshold, the measured value and pass/fail."""
    quality = manifest.get("quality") or {}
    gates = quality.get("gates") or {}
    rows = []
    if "max_quarantined_fraction" in gates:
        n_in = manifest.get("records_in") or 0
        fraction = sum((manifest.get("quarantined") or {}).values()) / n_in if n_in else 0.0
        rows.append({"gate": "max_quarantined_fraction", "threshold": gates["max_quarantined_fraction"],
                     "value": round(fraction, 6), "passed": fraction <= gates["max_quarantined_fraction"]})
    if "min_rows_per_class" in gates:
        counts = manifest.get("label_counts") or {}
        fewest = min(counts.values()) if counts else 0
        rows.append({"gate": "min_rows_per_class", "threshold": gates["min_rows_per_class"], "value": fewest,
                     "passed": fewest >= gates["min_rows_per_class"]})
    failed = quality.get("gate")
    for row in rows:   # the recorded verdict is the authority; the figures say why
        row["passed"] = row["gate"] != failed if failed else row["passed"]
    return rows


def masked_counts(manifest: dict) -> dict[str, int]:
    """Personal data masked per kind (``masked_email`` -> ``email``), from the cleaning counts."""
    return {k.removeprefix("masked_"): int(v) for k, v in sorted((manifest.get("cleaning") or {}).items())
            if k.startswith("masked_")}


def _figure_png(draw, size=(4, 2.6)) -> str:
    """A matplotlib figure drawn by ``draw(fig)``, as base64 PNG. A bare ``Figure``, not pyplot's:
    no global state, so it can be drawn in a thread of its own (:func:`charts`)."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=size, dpi=80)
    draw(fig)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode()


def _png(title: str, counts: np.ndarray, edges: np.ndarray) -> str:
    def draw(fig):
        ax = fig.add_subplot()
        ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge")
        ax.set_title(title, fontsize=9)
    return _figure_png(draw)


def _labels_png(labels: dict[str, int]) -> str:
    """The label distribution with the label names on the x axis."""
    def draw(fig):
        ax = fig.add_subplot()
        names = list(labels)
        ax.bar(range(len(names)), list(labels.values()))
        ax.set_xticks(range(len(names)), [n[:12] for n in names], rotation=45 if len(names) > 10 else 0,
                      fontsize=8)
        ax.set_xlabel("label")
        ax.set_ylabel("rows")
        ax.set_title("label distribution", fontsize=9)
    return _figure_png(draw, size=(max(4, 0.35 * len(labels)), 2.8))


def _montage_png(images: np.ndarray) -> str:
    """Images side by side as one PNG, each scaled up to at least ``MONTAGE_PIXELS`` high (nearest
    neighbour), white between them, grey when they have one channel. The pixels themselves, not 16
    matplotlib axes: those took 0.9 s of every prepare's critical path (bench/RESULTS.md, issue 18)."""
    from matplotlib import image
    imgs = np.clip(np.asarray(images, dtype="float32"), 0, 1)
    if imgs.ndim == 4 and imgs.shape[-1] == 1:
        imgs = imgs[..., 0]
    k = -(-MONTAGE_PIXELS // imgs.shape[1])
    imgs = imgs.repeat(k, axis=1).repeat(k, axis=2)
    gap = np.ones((imgs.shape[1], 2 * k, *imgs.shape[3:]), dtype="float32")
    row = np.concatenate([part for img in imgs for part in (gap, img)][1:], axis=1)
    buf = io.BytesIO()
    image.imsave(buf, row, cmap="gray", vmin=0, vmax=1, format="png")
    return base64.b64encode(buf.getvalue()).decode()


MONTAGE = 8             # images of each kind in the montage
MONTAGE_PIXELS = 56     # least height of each montage image on the page
QUARANTINE_EXAMPLES = 3  # records shown per reason
RAW_CHARS = 100          # of each quarantined record's raw text


def examples(folder: Path, label_names: dict[int, str], n: int = MONTAGE) -> dict:
    """What the HTML shows of the stored version in ``folder``: the first ``n`` stored train images
    and the first ``n`` augmented copies (originals and copies sit side by side in each block, so
    they are the same images), and a few quarantined records per reason."""
    import dask
    from pipeline.store.writer import open_written
    with dask.config.set(scheduler="synchronous"):   # a few local reads: this process, not the cluster
        return _examples(*open_written(folder), label_names, n)


def _examples(ds, quarantine, label_names: dict[int, str], n: int) -> dict:
    out = {"montage": {}, "quarantine": {}}
    if ds is not None and "image" in ds and "augmented" in ds:
        flags = ds["augmented"].values
        for kind, pick in (("stored", ~flags), ("augmented", flags)):
            index = np.flatnonzero(pick)[:n]
            if len(index):
                labels = ds["label"].isel(sample=index).values
                out["montage"][kind] = (ds["image"].isel(sample=index).values,
                                        [label_names.get(int(v), str(v)) for v in labels])
    if quarantine is not None and len(quarantine):
        for reason, group in quarantine.groupby("reason", sort=True):
            out["quarantine"][str(reason)] = [(str(r["source"]), int(r["line"]), _short(str(r["raw"])))
                                              for _, r in group.head(QUARANTINE_EXAMPLES).iterrows()]
    return out


def _short(raw: str) -> str:
    return raw if len(raw) <= RAW_CHARS else raw[:RAW_CHARS] + f"... ({len(raw)} characters)"


def _masking(masked) -> str:
    if not masked:
        return "<p>no personal data masking configured (clean.text.mask)</p>"
    return _table(masked, ("personal data", "masked"), cls="masking")


def _table(rows: list[tuple], head: tuple, cls: str = "") -> str:
    th = "".join(f"<th>{html.escape(str(h))}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table{f' class={cls!r}' if cls else ''}><tr>{th}</tr>{body}</table>"


def _img(alt: str, png: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{png}">'


def _split_table(report: dict) -> str:
    table = report.get("split_by_label") or {}
    labels = list(report["label_distribution"])
    rows = [(split, *(table[split].get(name, 0) for name in labels), sum(table[split].values()))
            for split in SPLITS if split in table]
    rows.append(("all", *(sum(table[s].get(name, 0) for s in table) for name in labels),
                 sum(sum(t.values()) for t in table.values())))
    return _table(rows, ("split", *labels, "rows"), cls="split-by-label")


def _gates_table(report: dict) -> str:
    rows = [(g["gate"], g["threshold"], g["value"], "pass" if g["passed"] else "FAIL") for g in report["gates"]]
    return _table(rows, ("gate", "threshold", "value", "verdict"), cls="gates") if rows else "<p>no gates</p>"


def _montage(shown: dict) -> str:
    parts = []
    for kind, caption in (("stored", "stored train images (the first of the version)"),
                          ("augmented", "their augmented copies")):
        if kind in shown["montage"]:
            images, titles = shown["montage"][kind]
            parts.append(f"<figure class='montage' id='montage-{kind}'>{_img(caption, _montage_png(images))}"
                         f"<figcaption>{html.escape(caption)}; labels, left to right: "
                         f"{html.escape(', '.join(titles))}</figcaption></figure>")
    return "".join(parts) or "<p>no images in this dataset</p>"


def _quarantine(shown: dict) -> str:
    if not shown["quarantine"]:
        return "<p>no record was quarantined</p>"
    return "".join(f"<h3>{html.escape(reason)}</h3>"
                   + _table(records, ("source", "line", "raw record"), cls="quarantine")
                   for reason, records in shown["quarantine"].items())


def charts(report: dict, histograms: dict) -> list[str]:
    """The ``<img>`` tags of the label distribution and the histograms: figures of the statistics
    alone, so they can be drawn while the version is written (``pipeline.prepare``)."""
    imgs = [_img("label distribution", _labels_png(report["label_distribution"]))]
    for name, (counts, edges) in histograms.items():
        imgs.append(_img(name, _png(name, np.asarray(counts), np.asarray(edges))))
    return imgs


def render_html(report: dict, histograms: dict, shown: dict | None = None, drawn: list[str] | None = None) -> str:
    """The page; ``drawn``: :func:`charts` of ``report`` and ``histograms`` when drawn already."""
    shown = shown or {"montage": {}, "quarantine": {}}
    labels = report["label_distribution"]
    imgs = charts(report, histograms) if drawn is None else drawn
    counts = [(k, report[k]) for k in ("records_in", "records_out", "duplicates_dropped")]
    counts += [(f"quarantined: {k}", v) for k, v in sorted(report["quarantined"].items())]
    cleaning = [(k, v) for k, v in sorted((report.get("cleaning") or {}).items()) if not k.startswith("masked_")]
    masked = list((report.get("masked") or {}).items())
    cols = sorted(report["columns"].items(), key=lambda kv: -kv[1]["std"])[:20]
    col_rows = [(c, *(f"{s[k]:.3f}" for k in ("mean", "std", "min", "max"))) for c, s in cols]
    name = f"{html.escape(str(report['dataset']))}@{html.escape(str(report['version']))}"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{name} data quality</title>"
            "<style>body{font-family:sans-serif} td,th{padding:2px 8px;text-align:right}"
            ".quarantine td{text-align:left;font-family:monospace} figure{display:inline-block;margin:4px}"
            "</style></head><body>"
            f"<h1>Data quality: {name}</h1>"
            f"<h2>Quality gates</h2>{_gates_table(report)}"
            f"<h2>Records</h2>{_table(counts, ('count', 'records'))}"
            f"<h2>Split x class</h2>{_split_table(report)}"
            f"<h2>Labels</h2>{_table(list(labels.items()), ('label', 'rows'))}"
            f"<h2>Cleaning</h2>{_table(cleaning, ('step', 'rows')) if cleaning else '<p>no cleaning counts</p>'}"
            f"<h2>Masking</h2>{_masking(masked)}"
            f"<h2>Images</h2>{_montage(shown)}"
            f"<h2>Quarantine examples</h2>{_quarantine(shown)}"
            f"<h2>Histograms</h2>{''.join(imgs)}"
            f"<h2>Columns (20 with the largest std; all in report.json)</h2>"
            f"{_table(col_rows, ('column', 'mean', 'std', 'min', 'max'))}</body></html>")


def write(folder: Path, report: dict, histograms: dict, label_names: dict[int, str] | None = None,
          drawn: list[str] | None = None) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.html`` into ``folder`` (the version being written: the
    HTML shows some of its images and quarantined records); ``drawn``: as for :func:`render_html`."""
    json_path, html_path = folder / "report.json", folder / "report.html"
    json_path.write_text(json.dumps(report, indent=1) + "\n")
    html_path.write_text(render_html(report, histograms, examples(folder, label_names or {}), drawn))
    return json_path, html_path
