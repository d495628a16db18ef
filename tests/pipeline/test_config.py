import pytest
import yaml

from pipeline.config import JobConfig, dump_yaml, load_config, parse_config
from pipeline.errors import UserError


def test_dumped_default_loads_back_identical(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(dump_yaml(JobConfig()))
    assert load_config(path) == JobConfig()


def test_edited_dump_changes_only_that_field(tmp_path):
    data = yaml.safe_load(dump_yaml(JobConfig()))
    data["source"]["path"] = "/data/other.csv"
    cfg = parse_config(data)
    assert cfg.source.path == "/data/other.csv"
    assert cfg.with_overrides(source={"path": JobConfig().source.path}) == JobConfig()


@pytest.mark.parametrize("data, match", [
    # a misspelt key names its full path
    ({"train": {"epochz": 3}}, r"config: unknown key 'train\.epochz'"),
    # an unknown section
    ({"trian": {}}, r"unknown key 'trian'"),
    # a wrong type names the key and the value found
    ({"train": {"epochs": "many"}}, r"train\.epochs: .*integer.*'many'"),
    # a shape that does not hold the pixels says what fits
    ({"schema": {"image_shape": [28, -1, 1]}}, r"schema: image_shape \[28, -1, 1\] .* e\.g\. \[28, 28, 1\]"),
    # split fractions must add up
    ({"split": {"train": 0.7, "val": 0.1, "test": 0.1}}, r"split: train \+ val \+ test must be 1"),
    # a misspelt key inside the features section
    ({"features": {"group": []}}, r"config: unknown key 'features\.group'"),
    # an unknown transform kind lists the registered ones
    ({"features": {"groups": [{"kind": "bert", "name": "t", "columns": ["text"]}]}},
     r"features\.groups: \[0\]: unknown kind 'bert'; choose one of .*sequence"),
    # a transform parameter that does not exist names the accepted ones
    ({"features": {"groups": [{"kind": "sequence", "name": "t", "columns": ["text"], "lenght": 8}]}},
     r"features\.groups: \[0\] \(sequence\): unknown parameter 'lenght'; accepted: .*length"),
])
def test_bad_config_is_one_line_naming_the_key(data, match):
    with pytest.raises(UserError, match=match) as info:
        parse_config(data)
    assert "\n" not in str(info.value)


def test_missing_config_file_names_it(tmp_path):
    with pytest.raises(UserError, match=r"nope\.yaml: config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_invalid_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  epochs: [1,\n")
    with pytest.raises(UserError, match=r"bad\.yaml: line \d+ is not valid YAML"):
        load_config(path)


def test_features_section_round_trips_through_the_dump(tmp_path):
    groups = [{"kind": "sequence", "name": "tokens", "columns": ["text"], "length": 16, "min_frequency": 2}]
    cfg = parse_config({"source": {"kind": "text", "labelled": True, "delimiter": "\t"},
                        "features": {"groups": groups}})
    assert "features:" in dump_yaml(cfg) and JobConfig().features.groups == []
    path = tmp_path / "c.yaml"
    path.write_text(dump_yaml(cfg))
    again = load_config(path)
    assert again == cfg and again.features.groups[0]["length"] == 16 and again.source.delimiter == "\t"


def test_features_change_the_data_part():
    a = JobConfig()
    b = a.with_overrides(features={"groups": [{"kind": "pixels", "name": "image", "columns": ["p*"]}]})
    assert a.data_part()["features"] == {"groups": []} and a.data_part() != b.data_part()


def test_data_part_ignores_cluster_and_training():
    a = JobConfig()
    b = a.with_overrides(cluster={"workers": 7}, train={"epochs": 1})
    assert a.data_part() == b.data_part()
    assert a.data_part() != a.with_overrides(split={"train": 0.7, "val": 0.2, "test": 0.1}).data_part()


def test_relative_paths_in_a_config_file_are_relative_to_that_file(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "c.yaml").write_text(yaml.safe_dump({
        "source": {"path": "data/*.csv"},                                   # relative: joined to the file's folder
        "cluster": {"scheduler_file": "/abs/sched.json",                    # absolute: kept
                    "slurm": {"log_directory": "logs"}}}))
    monkeypatch.chdir(tmp_path)                                             # not the config's folder
    cfg = load_config("project/c.yaml")
    assert cfg.source.path == str(folder / "data" / "*.csv")
    assert cfg.cluster.scheduler_file == "/abs/sched.json"
    assert cfg.cluster.slurm.log_directory == str(folder / "logs")
    # URLs and the embedded default are not paths
    (folder / "u.yaml").write_text(yaml.safe_dump({"source": {"kind": "sql", "path": "postgresql://h/db",
                                                              "query": "t"}}))
    assert load_config(folder / "u.yaml").source.path == "postgresql://h/db"
    assert load_config(None).source.path == JobConfig().source.path
