"""Handlers of ``dcpipe datasets ...`` and ``dcpipe lineage RUN``; ``cli.py`` only parses and dispatches."""
from __future__ import annotations

import json
from pathlib import Path

from pipeline import lineage, store


def _root(args) -> Path:
    return Path(args.root) if args.root else Path(args.workdir) / "datasets"


def _ref(args, spec: str) -> store.DatasetRef:
    name, version = store.parse_spec(spec)
    return store.resolve(_root(args), name, version)


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def list_(args) -> int:
    found = store.catalog(_root(args))
    if not found:
        print(f"no dataset versions under {_root(args)}")
    for name, refs in found.items():
        print(name)
        for i, ref in enumerate(refs):
            m = ref.manifest()
            latest = "  (latest)" if i == len(refs) - 1 else ""
            print(f"  {ref.version}  {m.get('created')}  {m.get('records_out')} rows  "
                  f"{_size(ref.path) / 1e6:.1f} MB{latest}")
    return 0


def show(args) -> int:
    ref = _ref(args, args.spec)
    m = ref.manifest()
    if args.json:
        print(json.dumps(m, indent=2))
        return 0
    print(f"{ref}  ({ref.path})")
    for key in ("created", "parent_version", "records_in", "records_out", "counts", "quarantined",
                "duplicates_dropped", "chunking"):
        print(f"  {key:<15} {m.get(key)}")
    print("  variables")
    for name, v in m.get("variables", {}).items():
        print(f"    {name:<12} {v['dtype']:<8} shape {v['shape']}  chunks {v['chunks']}  dims {v['dims']}")
    print(f"  code            {m.get('code', {}).get('hash', '')[:16]}  git {m.get('code', {}).get('git_commit')}")
    for src in m.get("sources", []):
        print(f"  source          {src['path']}  {src['bytes']} bytes  sha256 {src['sha256']}")
    return 0


def diff(args) -> int:
    a, b = _ref(args, args.a), _ref(args, args.b)
    lines = store.diff(a.manifest(), b.manifest())
    print(f"{a} -> {b}: " + ("identical content" if not lines else f"{len(lines)} difference(s)"))
    for line in lines:
        print(f"  {line}")
    return 0


def verify(args) -> int:
    ref = _ref(args, args.spec)
    problems = store.verify(ref)
    if not problems:
        n = ref.manifest().get("checksums", {}).get("n_files")
        print(f"{ref}: OK ({n} files, every checksum matches)")
        return 0
    print(f"{ref}: DAMAGED ({len(problems)} problem(s))")
    for problem in problems:
        print(f"  {problem}")
    return 1


def gc(args) -> int:
    if args.name:
        store.check_name(args.name)
    done = store.gc(_root(args), args.keep, name=args.name, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for ref in done.removed:
        print(f"{verb} {ref}")
    for path in done.cleaned:
        print(f"{verb} {path.name} (left by an interrupted writer)")
    print(f"{verb} {len(done.removed)} version(s), {len(done.cleaned)} leftover folder(s)")
    return 0


HANDLERS = {"list": list_, "show": show, "diff": diff, "verify": verify, "gc": gc}


def datasets(args) -> int:
    return HANDLERS[args.datasets_command](args)


def lineage_(args) -> int:
    t = lineage.trace(lineage.run_dir_of(args.run, Path(args.workdir)))
    print("\n".join(lineage.format_trace(t)))
    return 0
