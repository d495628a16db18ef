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
4. for each seed, two classification runs on that one version with the same epochs, batch, learning
   rate and seed (the seed sets the initial weights of what is not copied, dropout and the order):
   ``train.init_from: null`` (from scratch) and ``train.init_from: <the pretraining run>``.

Prints a Markdown table of the held-out (test split) accuracy of both, per seed and on average.
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
    print(f"pretraining {pre['run_id']} on {corpus.ref}: {args.objective}, {pre_epochs} epochs, test perplexity "
          f"{pre.get('test_perplexity')}, {pre['train_seconds']:.0f} s", flush=True)

    ft_cfg = load_config(EXAMPLES / "fortunes-finetune.yaml")
    (group,) = ft_cfg.features.groups
    ft_cfg = ft_cfg.with_overrides(features={"groups": [{**group, "tokenizer_file": str(tokenizer.resolve())}]})
    labelled = prepare(ft_cfg, args.workdir, args.workers)
    epochs = args.epochs or ft_cfg.train.epochs
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        seeded = ft_cfg.with_overrides(seed=seed)
        scratch = train(seeded, args.workdir, str(labelled.ref), args.np, epochs=epochs, init_from=None)
        tuned = train(seeded, args.workdir, str(labelled.ref), args.np, epochs=epochs, init_from=pre["run_id"])
        rows.append((seed, scratch, tuned))
        print(f"seed {seed}: scratch {scratch['test_accuracy']:.4f} ({scratch['run_id']}), fine-tuned "
              f"{tuned['test_accuracy']:.4f} ({tuned['run_id']})", flush=True)

    n = rows[0][1]
    print(f"\nfortunes: pretraining {corpus.ref} ({pre_epochs} epochs, {args.np} ranks, test perplexity "
          f"{pre.get('test_perplexity')}); labelled {labelled.ref}: n_train {n['n_train']}, n_val {n['n_val']}, "
          f"n_test {n['n_test']}; {epochs} epochs each; {platform.node()}, {os.cpu_count()} cores, "
          f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, load {load0:.1f} -> {os.getloadavg()[0]:.1f}, "
          f"{time.perf_counter() - started:.0f} s in all")
    print("\n| seed | scratch: test accuracy | fine-tuned: test accuracy | difference | train s (scratch / tuned) |")
    print("|---|---|---|---|---|")
    for seed, scratch, tuned in rows:
        a, b = scratch["test_accuracy"], tuned["test_accuracy"]
        print(f"| {seed} | {a:.4f} | {b:.4f} | {b - a:+.4f} | {scratch['train_seconds']:.0f} / "
              f"{tuned['train_seconds']:.0f} |")
    if len(rows) > 1:
        a = [r[1]["test_accuracy"] for r in rows]
        b = [r[2]["test_accuracy"] for r in rows]
        print(f"| mean | {statistics.mean(a):.4f} | {statistics.mean(b):.4f} | "
              f"{statistics.mean(b) - statistics.mean(a):+.4f} | |")


if __name__ == "__main__":
    main()
