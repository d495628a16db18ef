"""``dcpipe``: the command line. A user error is one line on stderr and exit code 2."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from models.launch import LAUNCHERS
from pipeline.config import CLUSTER_KINDS, dump_yaml, load_config
from pipeline.errors import UserError


def _version() -> str:
    """The installed package's version (its metadata, i.e. setup.cfg's ``version``)."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("dcpipe")
    except PackageNotFoundError:
        return "unknown (not installed; run deploy/install.sh)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dcpipe", description="Dask -> versioned Zarr -> Horovod training")
    parser.add_argument("--version", action="version", version=f"dcpipe {_version()}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)
    data = argparse.ArgumentParser(add_help=False, parents=[common])
    data.add_argument("--config", help="YAML config (see `dcpipe config`); default: the built-in one")
    data.add_argument("--workdir", default="dcpipe-work", help="working folder (default: ./dcpipe-work)")
    data.add_argument("--workers", type=int, help="Dask workers: local ones to start (default: one per core); "
                      "with --cluster address, how many to wait for")
    data.add_argument("--cluster", choices=CLUSTER_KINDS, help="Dask cluster kind (default: cluster.kind)")
    training = argparse.ArgumentParser(add_help=False)
    training.add_argument("--np", type=int, help="Horovod ranks (default: train.np, else one per GPU, else 1)")
    training.add_argument("--epochs", type=int, help="epochs (default: train.epochs)")
    training.add_argument("--compression", help="none, fp16, topk:RATIO or powersgd:RANK (default: train.compression)")
    training.add_argument("--launcher", choices=LAUNCHERS, default="horovodrun",
                          help="how Horovod ranks start: horovodrun (Gloo), or srun/mpirun (Horovod built with MPI)")
    training.add_argument("--hosts", help="horovodrun/mpirun -H, e.g. node1:2,node2:2, or `slurm`: the "
                          "current allocation, one rank per task (default: localhost:NP)")
    training.add_argument("--resume", nargs="?", const=True, default=False, metavar="RUN",
                          help="continue a run from its last checkpoint: RUN, or the dataset version's newest run")
    training.add_argument("--verify", action="store_true",
                          help="recompute every checksum of the dataset version before training")
    run = sub.add_parser("run", parents=[data, training],
                         help="prepare the dataset and train (default: embedded MNIST)")
    run.add_argument("--dataset", metavar="NAME@VERSION",
                     help="train on this prepared version (a version, unique prefix, tag or latest); skip prepare")
    sub.add_parser("prepare", parents=[data], help="prepare the dataset version only; prints NAME@VERSION last")
    tr = sub.add_parser("train", parents=[common, training],
                        help="train on a prepared dataset version (= dcpipe run --dataset)")
    tr.add_argument("--dataset", required=True, help="NAME[@VERSION|@PREFIX|@TAG]; no version or @latest = newest")
    tr.add_argument("--config", help="YAML config whose train section is used; default: the dataset's own config")
    tr.add_argument("--workdir", default="dcpipe-work", help="working folder (default: ./dcpipe-work)")
    rs = sub.add_parser("runs", help="list, show or compare runs")
    rs_sub = rs.add_subparsers(dest="runs_command", required=True)
    in_workdir = argparse.ArgumentParser(add_help=False, parents=[common])
    in_workdir.add_argument("--workdir", default="dcpipe-work", help="working folder (default: ./dcpipe-work)")
    rs_sub.add_parser("list", parents=[in_workdir], help="every run: dataset, network, accuracy, wall time, state")
    rs_sub.add_parser("show", parents=[in_workdir], help="one run's record and history").add_argument("run")
    rs_sub.add_parser("compare", parents=[in_workdir], help="runs side by side").add_argument("runs", nargs="+")
    cfg = sub.add_parser("config", parents=[common], help="print the resolved configuration as YAML")
    cfg.add_argument("--config", help="YAML config to resolve; default: the built-in one")
    ds = sub.add_parser("datasets", help="list, show, diff, verify, tag or gc the stored dataset versions")
    ds_sub = ds.add_subparsers(dest="datasets_command", required=True)
    where = argparse.ArgumentParser(add_help=False, parents=[common])
    where.add_argument("--workdir", default="dcpipe-work", help="working folder (default: ./dcpipe-work)")
    where.add_argument("--root", help="dataset store root (default: WORKDIR/datasets)")
    lst = ds_sub.add_parser("list", parents=[where], help="every dataset and its versions, oldest first, "
                            "with their tags, `latest` and quality-gate rejections")
    lst.add_argument("--json", action="store_true", help="print the catalog as JSON")
    show = ds_sub.add_parser("show", parents=[where], help="one version's manifest")
    show.add_argument("spec", metavar="NAME[@VERSION]", help="VERSION: a version id, a unique prefix (4+ hex "
                      "digits), a tag or latest (the default)")
    show.add_argument("--json", action="store_true", help="print the whole manifest as JSON")
    dif = ds_sub.add_parser("diff", parents=[where], help="what differs between two versions")
    dif.add_argument("a", metavar="NAME[@VERSION]")
    dif.add_argument("b", metavar="NAME[@VERSION]")
    ver = ds_sub.add_parser("verify", parents=[where], help="recompute checksums and the manifest seal; "
                            "exit 1 naming damage")
    ver.add_argument("spec", metavar="NAME@VERSION")
    tag = ds_sub.add_parser("tag", parents=[where], help="name a version: NAME@TAG then resolves to it")
    tag.add_argument("spec", metavar="NAME@VERSION")
    tag.add_argument("tag", metavar="TAG", help="e.g. v1 or prod: a letter first, not all hex, not latest")
    gc = ds_sub.add_parser("gc", parents=[where], help="keep the N newest versions of each dataset (and "
                           "every version a run in WORKDIR/runs references, or a tag names)")
    gc.add_argument("--keep", type=int, required=True, metavar="N")
    gc.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")
    gc.add_argument("name", nargs="?", help="only this dataset (default: all)")
    lin = sub.add_parser("lineage", parents=[common], help="model -> run -> dataset version -> config -> sources")
    lin.add_argument("run", metavar="RUN", help="run id (under WORKDIR/runs) or run folder")
    lin.add_argument("--workdir", default="dcpipe-work", help="working folder (default: ./dcpipe-work)")
    _serving_parsers(sub, common)
    tn = sub.add_parser("tune", parents=[common], help="search hyperparameters with Optuna on the Dask cluster "
                        "(the config's tune section; see docs/tuning.md); prints the best run id last")
    tn.add_argument("--config", help="YAML config with a tune section; default: the built-in one")
    tn.add_argument("--trials", type=int, help="trials the study should hold (default: tune.trials)")
    tn.add_argument("--workdir", default="dcpipe-work", help="working folder (default: ./dcpipe-work)")
    tn.add_argument("--study", help="study name under WORKDIR/studies/ (default: tune.study, else dataset.name); "
                    "an existing study continues")
    return parser


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "config":
        sys.stdout.write(dump_yaml(load_config(args.config)))
        return 0
    if args.command in ("datasets", "lineage"):
        from pipeline import datasets_cli
        return datasets_cli.datasets(args) if args.command == "datasets" else datasets_cli.lineage_(args)
    if args.command == "runs":
        return _runs(args)
    if args.command in SERVING_COMMANDS:
        return _serving(args)
    if args.command == "tune":
        return _tune(args)
    from pipeline.job import prepare_only, run
    for flag in ("workers", "np", "epochs"):
        value = getattr(args, flag, None)
        if value is not None and value < 1:
            raise UserError(f"--{flag} must be a positive integer (got {value})")
    config = load_config(args.config) if args.config else None
    if args.command == "prepare":
        prepared = prepare_only(config, workdir=args.workdir, workers=args.workers,
                                show_progress=True, cluster=args.cluster)
        print(prepared.ref)
        return 0
    run(config, workdir=args.workdir, workers=getattr(args, "workers", None), np=args.np,
        show_progress=True, cluster=getattr(args, "cluster", None), dataset=args.dataset,
        launcher=args.launcher, hosts=args.hosts, resume=args.resume, compression=args.compression,
        epochs=args.epochs, verify=args.verify)
    return 0


# serving: `dcpipe serve` and `dcpipe predict`
SERVING_COMMANDS = ("serve", "predict")


def _serving_parsers(sub, common: argparse.ArgumentParser) -> None:
    srv = sub.add_parser("serve", parents=[common], help="serve finished runs over HTTP (KServe v2, TF Serving "
                         "REST, /metrics); see docs/serving.md")
    srv.add_argument("run", metavar="RUN", help="run id (see `dcpipe runs list`) or run folder")
    srv.add_argument("--run", dest="more_runs", action="append", default=[], metavar="RUN",
                     help="one more run to serve (repeatable)")
    srv.add_argument("--workdir", default="dcpipe-work", help="working folder (default: ./dcpipe-work)")
    srv.add_argument("--config", help="YAML config whose serve section is used; default: the built-in one")
    srv.add_argument("--host", help="address to listen on (default: serve.host, 127.0.0.1)")
    srv.add_argument("--port", type=int, help="TCP port (default: serve.port, 8500)")
    prd = sub.add_parser("predict", parents=[common], help="predict a stored dataset version or a file of raw "
                         "records with a run on the Dask cluster; writes <name>-predictions and prints the accuracy")
    prd.add_argument("run", metavar="RUN", help="run id (see `dcpipe runs list`) or run folder")
    what = prd.add_mutually_exclusive_group(required=True)
    what.add_argument("--dataset", metavar="NAME@VERSION[:SPLIT]",
                      help="the version to predict (a version, prefix, tag or latest); SPLIT: train, val, test "
                           "(the default) or all")
    what.add_argument("--input", metavar="FILE",
                      help="a CSV of raw records of the run's schema, as the source had them, with or without "
                           "the label (the accuracy is printed when labels are present)")
    prd.add_argument("--workdir", default="dcpipe-work", help="working folder (default: ./dcpipe-work)")
    prd.add_argument("--config", help="YAML config whose cluster and store sections are used")
    prd.add_argument("--workers", type=int, help="Dask workers (default: cluster.workers)")
    prd.add_argument("--cluster", choices=CLUSTER_KINDS, help="Dask cluster kind (default: cluster.kind)")


def _serving(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    if args.command == "predict":
        from pipeline.predict import predict
        cluster = {k: v for k, v in (("kind", args.cluster), ("workers", args.workers)) if v is not None}
        done = predict(args.run, args.dataset, args.workdir, cfg.with_overrides(cluster=cluster) if cluster else cfg,
                       input_file=args.input)
        print(done.ref)
        return 0
    from pipeline.serve.server import serve
    flags = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if flags:
        cfg = cfg.with_overrides(serve=flags)
    serve([args.run, *args.more_runs], args.workdir, cfg.serve)
    return 0


def _tune(args: argparse.Namespace) -> int:
    if args.trials is not None and args.trials < 1:
        raise UserError(f"--trials must be a positive integer (got {args.trials})")
    from pipeline.tune.search import tune
    outcome = tune(load_config(args.config), args.workdir, trials=args.trials, study=args.study)
    if outcome.best_run is None:
        raise UserError(f"study {outcome.study}: no trial completed; see {outcome.folder / 'trials.csv'} "
                        "and the trials' logs under trials/")
    print(f"best: val_accuracy {outcome.best_value:.4f}, bundle {outcome.best_bundle} "
          f"(config {outcome.folder / 'best.yaml'})")
    print(outcome.best_run)
    return 0


def _runs(args: argparse.Namespace) -> int:
    from pipeline import runs
    from pipeline.workdir import Workdir
    workdir = Workdir(args.workdir)
    lines = (runs.list_lines(workdir) if args.runs_command == "list" else
             runs.show_lines(workdir, args.run) if args.runs_command == "show" else
             runs.compare_lines(workdir, args.runs))
    print("\n".join(lines))
    return 0


def _interrupt(signum, frame):
    """SIGTERM ends dcpipe as Ctrl-C does: the run records itself as interrupted and stops its ranks."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    on_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if on_main else None
    try:
        return _dispatch(args)
    except UserError as err:
        if args.debug:
            raise
        print(f"dcpipe: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dcpipe: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the CLI's last line of defence
        from models.launch import TrainingFailed
        if args.debug or not isinstance(err, TrainingFailed):
            raise
        print(f"dcpipe: error: {err}", file=sys.stderr)
        return 1
    finally:
        if on_main:
            signal.signal(signal.SIGTERM, previous)


def entry() -> None:
    """The ``dcpipe`` command: :func:`main`, then the process ends at once with its code, the logs
    and streams flushed, every file written closed and every process it started stopped, but without
    Python's teardown of the modules it loaded (Dask, pandas, xarray, Zarr): 1.2 s of every
    ``dcpipe run`` on the 2-core machine (bench/RESULTS.md, issue 18). Scripts call :func:`main` or
    the API (``pipeline.api``) and exit the usual way."""
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
