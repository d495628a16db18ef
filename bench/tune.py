"""Benchmark `dcpipe tune` (issue 16); results in bench/RESULTS-16.md.

(a) ``search``: on the embedded MNIST, at an equal budget of training epochs, TPE + Hyperband
    pruning against random search without pruning: the best val accuracy reached, and the time
    (from the study's first trial start) to reach 0.98 and to reach random search's best. The two
    strategies alternate per seed, side by side on the same machine.
(b) ``throughput``: trials per hour with 2 Dask workers (2 trials at once) against 1 worker (the
    trials one after another), the same trials (1 epoch each), alternating.

Each trial is a real run (horovodrun, ``--np`` ranks). Run it niced, it measures and reports::

    nice -n 10 .venv/bin/python bench/tune.py search --seeds 0 1 2 --budget 12 --epochs 3
    nice -n 10 .venv/bin/python bench/tune.py throughput --trials 4
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.config import parse_config  # noqa: E402
from pipeline.tune.search import Driver  # noqa: E402
from pipeline.workdir import Workdir  # noqa: E402

SPACE = {"train.learning_rate": {"log_uniform": [1.0e-4, 3.0e-2]}, "train.batch_size": {"choice": [16, 32, 64, 128]},
         "train.network": {"choice": ["cnn", "mlp"]}}


def config(epochs: int, sampler: str, pruner: str, seed: int, workers: int, space: dict = SPACE):
    """The embedded default (all 5,000 rows), no augmented copies, ``epochs`` epochs of 1 rank."""
    return parse_config({"augment": {"copies": 0}, "train": {"epochs": epochs},
                         "cluster": {"workers": workers, "dashboard_address": ":0"},
                         "tune": {"sampler": sampler, "pruner": pruner, "seed": seed, "np": 1, "space": space}},
                        origin="bench")


class Budgeted(Driver):
    """A driver that stops starting trials once ``budget`` epochs are spent or promised."""

    def __init__(self, *args, budget: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.budget, self.spent, self.results = budget, 0, []

    def wanted(self, done: int) -> bool:
        return self.spent + len(self.pending) * self.cfg.train.epochs < self.budget

    def told(self, result: dict) -> None:
        self.spent += result.get("epochs_done") or 0
        self.results.append({**result, "at": time.perf_counter()})


def study_run(work: Path, name: str, cfg, budget: int) -> dict:
    """One study to ``budget`` epochs: best value, value over time, epochs spent."""
    driver = Budgeted(cfg, Workdir.open(work), name, target=10_000, log=lambda *a: None, budget=budget)
    start = time.perf_counter()
    driver.run()
    trials = [t for t in driver.study.trials if t.value is not None]
    first_start = min(t.datetime_start for t in driver.study.trials)
    curve, best = [], 0.0
    for t in sorted(trials, key=lambda t: t.datetime_complete):
        best = max(best, max(t.intermediate_values.values(), default=t.value))
        curve.append(((t.datetime_complete - first_start).total_seconds(), best))
    return {"best": best, "curve": curve, "epochs": driver.spent, "trials": len(driver.study.trials),
            "pruned": sum(t.state.name == "PRUNED" for t in driver.study.trials),
            "seconds": time.perf_counter() - start}


def time_to(curve: list, value: float) -> float | None:
    return next((t for t, best in curve if best >= value), None)


def search(args) -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-tune-") as tmp:   # one store: prepared once, then cache hits
        for seed in args.seeds:
            runs = {}
            order = [("random", "none"), ("tpe", "hyperband")]
            for sampler, pruner in (order if seed % 2 == 0 else order[::-1]):   # alternate who goes first
                cfg = config(args.epochs, sampler, pruner, seed, workers=2)
                runs[sampler] = study_run(Path(tmp) / "work", f"{sampler}-{seed}", cfg, args.budget)
                print(json.dumps({"seed": seed, "sampler": sampler, "pruner": pruner, **runs[sampler]}), flush=True)
            target = runs["random"]["best"]
            rows.append({"seed": seed, **{f"{k}_{m}": runs[k][m] for k in runs for m in ("best", "epochs", "trials",
                                                                                       "pruned", "seconds")},
                         **{f"{k}_to_0.98": time_to(runs[k]["curve"], 0.98) for k in runs},
                         **{f"{k}_to_random_best": time_to(runs[k]["curve"], target) for k in runs}})
            print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"search": rows}, indent=1))


def throughput(args) -> None:
    space = {"train.learning_rate": {"log_uniform": [1.0e-3, 1.0e-2]}}
    out = {}
    with tempfile.TemporaryDirectory(prefix="bench-tune-") as tmp:
        for workers in (1, 2) * args.repeats:           # alternating, the same trials
            cfg = config(1, "random", "none", 0, workers=workers, space=space)
            driver = Driver(cfg, Workdir.open(Path(tmp) / "work"), f"w{workers}-{time.monotonic_ns()}", args.trials,
                            log=lambda *a: None)
            driver.run()
            trials = driver.study.trials
            span = (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()
            per_hour = 3600 * len(trials) / span
            out.setdefault(workers, []).append(per_hour)
            print(json.dumps({"workers": workers, "trials": len(trials), "seconds": round(span, 1),
                              "trials_per_hour": round(per_hour, 1)}), flush=True)
    mean = {w: sum(v) / len(v) for w, v in out.items()}
    print(json.dumps({"trials_per_hour": mean, "ratio_2_vs_1": mean[2] / mean[1]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    s = sub.add_parser("search")
    s.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    s.add_argument("--budget", type=int, default=12, help="training epochs per strategy")
    s.add_argument("--epochs", type=int, default=3, help="epochs of a trial run to its end")
    t = sub.add_parser("throughput")
    t.add_argument("--trials", type=int, default=4)
    t.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    search(args) if args.what == "search" else throughput(args)


if __name__ == "__main__":
    main()
