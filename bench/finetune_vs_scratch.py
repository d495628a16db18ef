"""Benchmark pretraining: fine-tuning a causal-LM-pretrained Transformer vs training it from scratch.

    bash .ci/setup.d/50-fortunes.sh && python docs/examples/fortunes/build.py
    PYTHONPATH=. nice -n 19 .venv/bin/python bench/finetune_vs_scratch.py [--seeds 0,1,2] [--np 2]

The fortunes example (docs/corpus.md), through dcpipe's own API:

1. ``docs/examples/fortunes-pretrain.yaml`` prepared on ``--workers`` Dask workers (cached when the
   version exists), its ``tokenizer.json`` copied into the work folder;
2. one pretraining run on that packed store: ``train.objective: causal_lm``, ``--np`` Horovod ranks,
   ``--pretrain-epochs`` epochs (its test perplexity reported);
3. ``docs/examples/fortunes-finetune.yaml`` prepared with that tokenizer (200 train, 40 val and 160
   test fortunes per class, none of them in the pretraining corpus);
4. for each seed, three classification runs on that one version with the same epochs, batch, learning
   rate and seed (the seed sets the initial weights of what is not copied, dropout and the order):
   from scratch with bidirectional attention (the classifier's default), from scratch with causal
   attention (the fine-tuned one's architecture), and ``train.init_from: <the pretraining run>``
   (``train.attention: auto``: causal after ``causal_lm``, both ways after ``masked_lm``).

Prints a Markdown table of the held-out (test split) accuracy of the three, per seed and on
average, with the fine-tuned run's gain over the same architecture from scratch and over the better
of the two scratch runs.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

from pipeline.config import load_config
from pipeline.job import prepare_only, run

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"
#: the from-scratch arms: the classifier's default (both ways) and the fine-tuned one's attention
ARMS = {"both_ways": {"init_from": None, "attention": "bidirectional"},
        "causal": {"init_from": None, "attention": "causal"}}


def _quiet(*_args, **_kwargs) -> None:
    pass


def prepare(cfg, workdir: Path, workers: int):
    return prepare_only(cfg.with_overrides(cluster={"workers": workers, "dashboard_address": ":0"}),
                        workdir=workdir, log=_quiet, show_progress=False)


def train(cfg, workdir: Path, dataset: str, np: int, **train_fields) -> dict:
    cfg = cfg.with_overrides(train={**train_fields, "np": np})
    return dict(run(cfg, workdir=workdir, dataset=dataset, log=_quiet, show_progress=False))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=Path("bench/out/finetune_vs_scratch"))
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated model seeds")
    ap.add_argument("--np", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--pretrain-epochs", type=int, default=None, help="default: the pretrain config's train.epochs")
    ap.add_argument("--epochs", type=int, default=None, help="default: the fine-tune config's train.epochs")
    ap.add_argument("--objective", default="causal_lm", choices=("causal_lm", "masked_lm"))
    ap.add_argument("--pretrained", metavar="RUN", help="reuse this finished pretraining run of --workdir "
                    "instead of pretraining again")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    load0 = os.getloadavg()[0]

    pre_cfg = load_config(EXAMPLES / "fortunes-pretrain.yaml")
    corpus = prepare(pre_cfg, args.workdir, args.workers)
    tokenizer = args.workdir / "fortunes-tokenizer.json"
    shutil.copyfile(corpus.ref.path / "tokenizer.json", tokenizer)
    pre_epochs = args.pretrain_epochs or pre_cfg.train.epochs
    if args.pretrained:
        pre = json.loads((args.workdir / "runs" / args.pretrained / "summary.json").read_text())
        pre_epochs = len(json.loads((args.workdir / "runs" / args.pretrained / "history.json").read_text()))
    else:
        pre = train(pre_cfg, args.workdir, str(corpus.ref), args.np, epochs=pre_epochs, objective=args.objective)
    print(f"pretraining {pre['run_id']} on {pre['dataset_version']}: {pre['objective']}, {pre_epochs} epochs, "
          f"test perplexity {pre.get('test_perplexity'):.1f}, {pre['train_seconds']:.0f} s", flush=True)

    ft_cfg = load_config(EXAMPLES / "fortunes-finetune.yaml")
    (group,) = ft_cfg.features.groups
    ft_cfg = ft_cfg.with_overrides(features={"groups": [{**group, "tokenizer_file": str(tokenizer.resolve())}]})
    labelled = prepare(ft_cfg, args.workdir, args.workers)
    epochs = args.epochs or ft_cfg.train.epochs
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        seeded = ft_cfg.with_overrides(seed=seed)
        runs = {arm: train(seeded, args.workdir, str(labelled.ref), args.np, epochs=epochs, **fields)
                for arm, fields in ARMS.items()}
        runs["tuned"] = train(seeded, args.workdir, str(labelled.ref), args.np, epochs=epochs,
                              init_from=pre["run_id"])
        rows.append((seed, runs))
        print(f"seed {seed}: " + ", ".join(f"{arm} {r['test_accuracy']:.4f} ({r['run_id']}, {r['attention']})"
                                           for arm, r in runs.items()), flush=True)

    n = rows[0][1]["tuned"]
    print(f"\nfortunes: pretraining {pre['dataset_version']} ({pre['objective']}, {pre_epochs} epochs, {args.np} "
          f"ranks, test perplexity {pre.get('test_perplexity'):.1f}); labelled {labelled.ref}: "
          f"n_train {n['n_train']}, n_val {n['n_val']}, "
          f"n_test {n['n_test']}; {epochs} epochs each; fine-tuned attention {n['attention']}; {platform.node()}, "
          f"{os.cpu_count()} cores, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, load {load0:.1f} -> "
          f"{os.getloadavg()[0]:.1f}, {time.perf_counter() - started:.0f} s in all")
    print("\n| seed | scratch, both ways | scratch, causal | fine-tuned | tuned - scratch causal | "
          "tuned - best scratch |")
    print("|---|---|---|---|---|---|")
    columns = {arm: [r[arm]["test_accuracy"] for _, r in rows] for arm in ("both_ways", "causal", "tuned")}
    for i, (seed, _) in enumerate(rows):
        _row(seed, *(columns[arm][i] for arm in columns))
    if len(rows) > 1:
        _row("mean", *(statistics.mean(columns[arm]) for arm in columns))


def _row(name, both_ways: float, causal: float, tuned: float) -> None:
    print(f"| {name} | {both_ways:.4f} | {causal:.4f} | {tuned:.4f} | {tuned - causal:+.4f} | "
          f"{tuned - max(both_ways, causal):+.4f} |")

if __name__ == "__main__":
    main()
