"""``dcpipe``: the command line. A user error is one line on stderr and exit code 2."""
from __future__ import annotations

import argparse
import sys

from models.launch import LAUNCHERS
from pipeline.config import CLUSTER_KINDS, dump_yaml, load_config
from pipeline.errors import UserError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dcpipe", description="Dask -> versioned Zarr -> Horovod training")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", parents=[common], help="prepare the dataset and train (default: embedded MNIST)")
    run.add_argument("--config", help="YAML config (see `dcpipe config`); default: the built-in one")
    run.add_argument("--workdir", default="dcpipe-work", help="working folder (default: ./dcpipe-work)")
    run.add_argument("--workers", type=int, help="Dask workers: local ones to start (default: one per core); "
                     "with --cluster address, how many to wait for")
    run.add_argument("--np", type=int, help="Horovod ranks (default: one per GPU, else 2)")
    run.add_argument("--cluster", choices=CLUSTER_KINDS, help="Dask cluster kind (default: cluster.kind)")
    run.add_argument("--dataset", metavar="NAME@VERSION", help="train on this prepared version; skip prepare")
    run.add_argument("--launcher", choices=LAUNCHERS, default="horovodrun",
                     help="how Horovod ranks start: horovodrun (Gloo), or srun/mpirun (Horovod built with MPI)")
    run.add_argument("--hosts", help="horovodrun/mpirun -H, e.g. node1:2,node2:2, or `slurm`: the "
                     "current allocation, one rank per task (default: localhost:NP)")
    prep = sub.add_parser("prepare", parents=[common], help="prepare the dataset version only; prints NAME@VERSION last")
    prep.add_argument("--config", help="YAML config (see `dcpipe config`); default: the built-in one")
    prep.add_argument("--workdir", default="dcpipe-work", help="working folder (default: ./dcpipe-work)")
    prep.add_argument("--workers", type=int, help="Dask workers: local ones to start (default: one per core); "
                     "with --cluster address, how many to wait for")
    prep.add_argument("--cluster", choices=CLUSTER_KINDS, help="Dask cluster kind (default: cluster.kind)")
    cfg = sub.add_parser("config", parents=[common], help="print the resolved configuration as YAML")
    cfg.add_argument("--config", help="YAML config to resolve; default: the built-in one")
    return parser


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "config":
        sys.stdout.write(dump_yaml(load_config(args.config)))
        return 0
    from pipeline.job import prepare_only, run
    for flag in ("workers", "np"):
        value = getattr(args, flag, None)
        if value is not None and value < 1:
            raise UserError(f"--{flag} must be a positive integer (got {value})")
    if args.command == "prepare":
        prepared = prepare_only(load_config(args.config), workdir=args.workdir, workers=args.workers,
                                show_progress=sys.stderr.isatty(), cluster=args.cluster)
        print(prepared.ref)
        return 0
    run(load_config(args.config), workdir=args.workdir, workers=args.workers, np=args.np,
        show_progress=sys.stderr.isatty(), cluster=args.cluster, dataset=args.dataset,
        launcher=args.launcher, hosts=args.hosts)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except UserError as err:
        if args.debug:
            raise
        print(f"dcpipe: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - the CLI's last line of defence
        from models.launch import TrainingFailed
        if args.debug or not isinstance(err, TrainingFailed):
            raise
        print(f"dcpipe: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
