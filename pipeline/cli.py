"""``dcpipe``: the command line. A user error is one line on stderr and exit code 2."""
from __future__ import annotations

import argparse
import sys

from pipeline.config import dump_yaml, load_config
from pipeline.errors import UserError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dcpipe", description="Dask -> versioned Zarr -> Horovod training")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", parents=[common], help="prepare the dataset and train (default: embedded MNIST)")
    run.add_argument("--config", help="YAML config (see `dcpipe config`); default: the built-in one")
    run.add_argument("--workdir", default="dcpipe-work", help="working folder (default: ./dcpipe-work)")
    run.add_argument("--workers", type=int, help="local Dask workers (default: one per core)")
    run.add_argument("--np", type=int, help="Horovod ranks (default: one per GPU, else 2)")
    prep = sub.add_parser("prepare", parents=[common], help="prepare the dataset version only; prints NAME@VERSION last")
    prep.add_argument("--config", help="YAML config (see `dcpipe config`); default: the built-in one")
    prep.add_argument("--workdir", default="dcpipe-work", help="working folder (default: ./dcpipe-work)")
    prep.add_argument("--workers", type=int, help="local Dask workers (default: one per core)")
    tr = sub.add_parser("train", parents=[common], help="train on a prepared dataset version with Horovod")
    tr.add_argument("--dataset", required=True, help="NAME[@VERSION]; no version or @latest = newest")
    tr.add_argument("--config", help="YAML config whose train section is used; default: the built-in one")
    tr.add_argument("--workdir", default="dcpipe-work", help="working folder (default: ./dcpipe-work)")
    tr.add_argument("--np", type=int, help="Horovod ranks (default: one per GPU, else 2)")
    tr.add_argument("--compression", help="none, fp16, topk:RATIO or powersgd:RANK (default: the config's)")
    tr.add_argument("--resume", action="store_true", help="continue the dataset's last run from its last checkpoint")
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
    if args.command == "train":
        from models.train_cmd import train_command
        train_command(load_config(args.config), args.dataset, args.workdir, np=args.np,
                      compression=args.compression, resume=args.resume)
        return 0
    if args.command == "prepare":
        prepared = prepare_only(load_config(args.config), workdir=args.workdir, workers=args.workers,
                                show_progress=sys.stderr.isatty())
        print(prepared.ref)
        return 0
    run(load_config(args.config), workdir=args.workdir, workers=args.workers, np=args.np,
        show_progress=sys.stderr.isatty())
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
