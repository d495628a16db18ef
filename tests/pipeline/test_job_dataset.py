"""pipeline.job: training on an already prepared version (`dcpipe run --dataset`), and `--cluster`."""
from __future__ import annotations

import pytest

from pipeline.cli import main
from pipeline.config import JobConfig
from pipeline.errors import UserError
from pipeline.job import existing_version, prepare_only, train_plan
from tests.conftest import small_config, take_balanced


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, mnist_lines):
    folder = tmp_path_factory.mktemp("prepared")
    csv = folder / "small.csv"
    csv.write_text("\n".join(take_balanced(mnist_lines, 20)) + "\n")
    cfg = small_config(csv, augment={"copies": 0}, cluster={"workers": 1})
    return cfg, folder / "work", prepare_only(cfg, folder / "work", log=lambda *_: None, show_progress=False)


def test_existing_version_finds_what_prepare_printed(prepared):
    cfg, workdir, first = prepared
    found = existing_version(workdir, str(first.ref))
    assert found.ref == first.ref and found.manifest == first.manifest and found.cached


def test_train_plan_reads_the_prepared_store(prepared, tmp_path):
    cfg, workdir, first = prepared
    plan = train_plan(cfg, existing_version(workdir, str(first.ref)), tmp_path)
    assert plan.store == str(first.ref.data_path) and plan.ranges == first.manifest["ranges"]
    assert plan.dataset_version == str(first.ref) and plan.epochs == cfg.train.epochs


def test_train_plan_refuses_a_config_with_another_schema(prepared, tmp_path):
    cfg, workdir, first = prepared
    other = cfg.with_overrides(schema={"labels": list(range(9))})
    with pytest.raises(UserError, match=r"was prepared with another schema than this config's"):
        train_plan(other, first, tmp_path)


@pytest.mark.parametrize("dataset, match", [
    ("mnist", r"--dataset 'mnist' must be NAME@VERSION"),                       # no version
    ("mnist@0000000000000000", r"--dataset mnist@0000000000000000: .* not found; see `dcpipe datasets list`"),
    ("../x@1", r"dataset name '../x' is not allowed"),                       # not a path
])
def test_existing_version_errors(dataset, match, tmp_path):
    with pytest.raises(UserError, match=match):
        existing_version(tmp_path, dataset)


def test_cli_cluster_flag_reaches_the_client_and_errors_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    code = main(["prepare", "--cluster", "address", "--workdir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("dcpipe: error: cluster.kind 'address' needs cluster.address")


def test_cli_rejects_an_unknown_cluster_kind(capsys):
    with pytest.raises(SystemExit) as info:
        main(["run", "--cluster", "yarn"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --cluster: invalid choice: 'yarn'" in err
    assert all(kind in err for kind in ("local", "address", "slurm", "kubernetes"))


def test_cluster_kind_does_not_change_the_dataset_version():
    base = JobConfig()
    assert base.with_overrides(cluster={"kind": "slurm"}).data_part() == base.data_part()
