"""pipeline.job: training on an already prepared version (`dcpipe run --dataset`), and `--cluster`;
pipeline.training: the checks made before a run folder exists."""
from __future__ import annotations

import pytest

from pipeline.cli import main
from pipeline.config import JobConfig, dump_yaml
from pipeline.errors import UserError
from pipeline.job import existing_version, prepare_only
from pipeline.training import check_shares, config_for, plan_for
from tests.conftest import prepare_small, small_config


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, mnist_lines):
    return prepare_small(tmp_path_factory.mktemp("prepared"), mnist_lines)


def test_existing_version_finds_what_prepare_printed(prepared):
    cfg, workdir, first = prepared
    found = existing_version(workdir, str(first.ref))
    assert found.ref == first.ref and found.manifest == first.manifest and found.cached


def test_the_plan_reads_the_prepared_store_with_the_configs_train_section(prepared, tmp_path):
    cfg, workdir, first = prepared
    found = existing_version(workdir, str(first.ref))
    plan = plan_for(config_for(found, cfg), found.ref, tmp_path)
    assert plan.store == str(first.ref.data_path) and plan.ranges == first.manifest["ranges"]
    assert plan.dataset_version == str(first.ref) and plan.epochs == cfg.train.epochs


def test_without_a_config_a_version_trains_with_its_own_data_config(prepared):
    cfg, workdir, first = prepared
    own = config_for(existing_version(workdir, str(first.ref)), None)
    assert own.data_part() == first.manifest["config"] and own.train == JobConfig().train


def test_a_config_with_another_schema_is_refused(prepared):
    cfg, workdir, first = prepared
    other = cfg.with_overrides(schema={"labels": list(range(9))})
    with pytest.raises(UserError, match=r"was prepared with another schema than this config's"):
        config_for(first, other)


def test_a_batch_larger_than_a_ranks_share_is_refused_before_any_rank_starts(prepared, tmp_path, capsys):
    cfg, workdir, first = prepared
    n = first.manifest["n_train_stored"]                     # 160 train samples: 80 a rank at np 2
    with pytest.raises(UserError, match=rf"train.batch_size: 81 a rank x 2 ranks = 162 samples a step, more than "
                                        rf"the train split holds \({n}\); lower train.batch_size to at most 80 or --np"):
        check_shares(cfg.with_overrides(train={"batch_size": 81}), first.manifest, 2)
    check_shares(cfg.with_overrides(train={"batch_size": 80}), first.manifest, 2)     # exactly one batch: fine
    config = tmp_path / "big.yaml"
    config.write_text(dump_yaml(cfg.with_overrides(train={"batch_size": 4096})))
    code = main(["train", "--dataset", str(first.ref), "--workdir", str(workdir), "--config", str(config)])
    assert code == 2 and "train.batch_size: 4096 a rank x 2 ranks" in capsys.readouterr().err
    assert not (workdir / "runs").exists()                   # refused before a run folder was made


@pytest.mark.parametrize("dataset, match", [
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


def test_a_cache_hit_starts_no_cluster(prepared, monkeypatch):
    """The same sources and config again: found before any cluster starts. An `address` cluster with no
    scheduler anywhere would fail to connect if one were started."""
    cfg, workdir, first = prepared
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    again = prepare_only(cfg.with_overrides(cluster={"kind": "address"}), workdir, log=lambda *_: None)
    assert again.cached and again.ref == first.ref


def test_a_network_that_cannot_take_the_images_fails_before_any_cluster(tmp_path, small_csv, monkeypatch):
    """A token network on an image source: refused first (an `address` cluster with no scheduler
    would be the error otherwise), and no run folder is made."""
    from pipeline.job import run
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    cfg = small_config(small_csv, train={"network": "text_transformer"}, cluster={"kind": "address"})
    with pytest.raises(UserError, match=r"train.network: text_transformer takes token ids but source.kind csv gives "
                                        r"'image'; set train.network to cnn, mlp or transformer"):
        run(cfg, workdir=tmp_path / "work", log=lambda *_: None)
    assert not (tmp_path / "work" / "runs").exists()
