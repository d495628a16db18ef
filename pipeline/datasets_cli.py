"""Handlers of ``dcpipe datasets ...`` and ``dcpipe lineage RUN``; ``cli.py`` only parses and dispatches."""
from __future__ import annotations

import json
from pathlib import Path

from pipeline import lineage, store
from pipeline.errors import UserError
from pipeline.workdir import Workdir


def _root(args) -> Path:
    return Path(args.root) if args.root else Path(args.workdir) / "datasets"


def _ref(args, spec: str) -> store.DatasetRef:
    return store.resolve_spec(_root(args), spec)


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _marks(ref: store.DatasetRef, manifest: dict, latest: store.DatasetRef | None) -> str:
    marks = [f"tag {t}" for t in store.tags_of(ref)]
    if store.is_rejected(manifest):
        marks.append(f"rejected: {store.rejected_gate(manifest)}")
    if ref == latest:
        marks.append("latest")
    return "".join(f"  ({m})" for m in marks)


def _latest(refs: list[store.DatasetRef]) -> store.DatasetRef | None:
    usable = [ref for ref in refs if not store.is_rejected(ref.manifest())]
    return usable[-1] if usable else None


def _entry(ref: store.DatasetRef, latest: store.DatasetRef | None) -> dict:
    m = ref.manifest()
    return {"ref": str(ref), "version": ref.version, "created": m.get("created"), "rows": m.get("records_out"),
            "bytes": _size(ref.path), "tags": store.tags_of(ref), "latest": ref == latest,
            "rejected": store.rejected_gate(m), "path": str(ref.path)}


def list_(args) -> int:
    found = store.catalog(_root(args))
    if getattr(args, "json", False):
        print(json.dumps({name: [_entry(ref, _latest(refs)) for ref in refs] for name, refs in found.items()},
                         indent=2))
        return 0
    if not found:
        print(f"no dataset versions under {_root(args)}")
    for name, refs in found.items():
        print(name)
        latest = _latest(refs)
        for ref in refs:
            m = ref.manifest()
            print(f"  {ref.version}  {m.get('created')}  {m.get('records_out')} rows  "
                  f"{_size(ref.path) / 1e6:.1f} MB{_marks(ref, m, latest)}")
    return 0


def tag(args) -> int:
    ref = _ref(args, args.spec)
    before = store.tag(ref, args.tag)
    moved = f" (moved from {ref.name}@{before})" if before else ""
    print(f"tagged {ref} as {ref.name}@{args.tag}{moved}")
    return 0


def show(args) -> int:
    ref = _ref(args, args.spec)
    m = ref.manifest()
    if args.json:
        print(json.dumps(m, indent=2))
        return 0
    tags = store.tags_of(ref)
    print(f"{ref}  ({ref.path})" + (f"  tags {', '.join(tags)}" if tags else ""))
    for key in ("created", "parent_version", "quality", "records_in", "records_out", "counts", "quarantined",
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
    manifest = ref.manifest()
    if not problems:
        n = manifest.get("checksums", {}).get("n_files")
        print(f"{ref}: OK ({n} files, every checksum matches)")
    else:
        print(f"{ref}: DAMAGED ({len(problems)} problem(s))")
        for problem in problems:
            print(f"  {problem}")
    if not store.is_sealed(manifest):
        print(f"  note: {store.MANIFEST} is unsealed (written by an older dcpipe): its own fields are not checked")
    return 1 if problems else 0


def referenced_versions(workdir: Workdir) -> dict[str, list[str]]:
    """``NAME@VERSION`` -> ids of the runs in ``workdir`` that reference it (from each run's
    ``summary.json`` field ``dataset_version`` and ``lineage.json`` field ``dataset.ref``)."""
    found: dict[str, set[str]] = {}
    for run in workdir.run_dirs():
        for path, pick in ((run.summary, lambda d: d.get("dataset_version")),
                           (run.lineage, lambda d: (d.get("dataset") or {}).get("ref"))):
            try:
                spec = pick(json.loads(path.read_text()))
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(spec, str) and "@" in spec:
                found.setdefault(spec, set()).add(run.id)
    return {spec: sorted(runs) for spec, runs in sorted(found.items())}


def _protected(args) -> dict[store.DatasetRef, list[str]]:
    out = {}
    for spec, runs in referenced_versions(Workdir(args.workdir)).items():
        try:
            out[store.DatasetRef(_root(args), *store.parse_spec(spec))] = runs
        except UserError:   # a run record that names no valid version protects nothing
            continue
    return out


def gc(args) -> int:
    if args.name:
        store.check_name(args.name)
    done = store.gc(_root(args), args.keep, name=args.name, dry_run=args.dry_run, protected=_protected(args))
    verb = "would remove" if args.dry_run else "removed"
    for ref, why in done.kept:
        print(f"kept {ref}: {why}")
    for ref in done.removed:
        print(f"{verb} {ref}")
    for path in done.cleaned:
        print(f"{verb} {path.name} (left by an interrupted writer)")
    print(f"{verb} {len(done.removed)} version(s), {len(done.cleaned)} leftover(s); kept {len(done.kept)} "
          "older version(s) in use")
    return 0


HANDLERS = {"list": list_, "show": show, "diff": diff, "verify": verify, "gc": gc, "tag": tag}


def datasets(args) -> int:
    return HANDLERS[args.datasets_command](args)


def lineage_(args) -> int:
    t = lineage.trace(lineage.run_dir_of(args.run, Path(args.workdir)))
    print("\n".join(lineage.format_trace(t)))
    return 0
