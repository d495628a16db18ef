"""A study's results, written after every ``dcpipe tune`` session::

    studies/<name>/trials.csv     one row per trial: number, state, value, params, run id, times
    studies/<name>/best.yaml      the best trial's full config: ``dcpipe run --config best.yaml`` takes it
    studies/<name>/best.json      the best trial: number, val accuracy, params, run id, its bundle
    studies/<name>/report.html    optimisation history, parameter importances, parallel coordinates
                                  and per-epoch curves as PNGs inside the page (works offline)
"""
from __future__ import annotations

import base64
import html
import io
import json
import warnings
from pathlib import Path

import optuna

from models.rundir import RunDir, atomic_write_text
from pipeline.config import JobConfig, dump_yaml
from pipeline.tune import study as studies

PLOTS = (("Optimisation history", "plot_optimization_history"),
         ("Parameter importances", "plot_param_importances"),
         ("Parallel coordinates", "plot_parallel_coordinate"),
         ("Validation accuracy per epoch", "plot_intermediate_values"))


def write(study: optuna.Study, cfg: JobConfig, folder: Path, log=print) -> optuna.trial.FrozenTrial | None:
    """Write the study's files; return its best trial (None before one completes)."""
    from pipeline.tune.search import apply
    trials_csv(study, folder / "trials.csv")
    best = studies.best_trial(study)
    if best is not None:
        atomic_write_text(folder / "best.yaml", f"# study {study.study_name}, trial {best.number}: "
                          f"val_accuracy {best.value:.4f}, run {best.user_attrs.get('run_id')}\n"
                          + dump_yaml(apply(cfg, best.params)))
        run = best.user_attrs.get("run_dir")
        atomic_write_text(folder / "best.json", json.dumps(
            {"trial": best.number, "val_accuracy": best.value, "params": best.params,
             "run_id": best.user_attrs.get("run_id"), "run_dir": run,
             "bundle": str(RunDir(Path(run)).bundle) if run else None}, indent=2) + "\n")
    atomic_write_text(folder / "report.html", page(study, best))
    log(f"tune: wrote {folder / 'trials.csv'}, {folder / 'best.yaml'} and {folder / 'report.html'}")
    return best


def trials_csv(study: optuna.Study, path: Path) -> Path:
    """Every trial as a CSV row (Optuna's ``trials_dataframe``: params_*, user_attrs_*)."""
    frame = study.trials_dataframe(attrs=("number", "state", "value", "params", "user_attrs",
                                          "datetime_start", "datetime_complete", "duration"))
    return atomic_write_text(path, frame.to_csv(index=False))


def _png(study: optuna.Study, plot: str) -> tuple[bool, str]:
    """One of Optuna's matplotlib plots: (True, base64 PNG), or (False, why the study cannot draw it yet)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as plots
    try:
        with warnings.catch_warnings():          # "too few trials" notes: the page says what it shows
            warnings.simplefilter("ignore")
            axes = getattr(plots, plot)(study)
    except (ValueError, RuntimeError, ZeroDivisionError) as exc:   # e.g. importances of one trial
        return False, f"not drawn yet: {exc}"
    figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
    figure.set_size_inches(9, 4.5)
    figure.tight_layout()
    buf = io.BytesIO()
    figure.savefig(buf, format="png", dpi=90)
    plt.close(figure)
    return True, base64.b64encode(buf.getvalue()).decode()


def page(study: optuna.Study, best) -> str:
    """The report as one self-contained HTML page."""
    states = {}
    for t in study.trials:
        states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
    head = (f"<h1>Study {html.escape(study.study_name)}</h1><p>{len(study.trials)} trials: "
            + ", ".join(f"{n} {s}" for s, n in sorted(states.items())) + "</p>")
    if best is not None:
        head += (f"<p>Best: trial {best.number}, val_accuracy {best.value:.4f}, run "
                 f"<code>{html.escape(str(best.user_attrs.get('run_id')))}</code>; params <code>"
                 f"{html.escape(json.dumps(best.params))}</code></p>")
    body = []
    for title, plot in PLOTS:
        drawn, text = _png(study, plot)
        body.append(f"<h2>{title}</h2>" + (f'<img alt="{title}" src="data:image/png;base64,{text}">' if drawn
                                           else f"<p>{html.escape(text)}</p>"))
    return ("<!doctype html><html><head><meta charset=\"utf-8\"><title>dcpipe tune: "
            f"{html.escape(study.study_name)}</title></head><body>{head}{''.join(body)}</body></html>\n")
