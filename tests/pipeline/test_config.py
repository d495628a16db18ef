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


def test_data_part_ignores_cluster_and_training():
    a = JobConfig()
    b = a.with_overrides(cluster={"workers": 7}, train={"epochs": 1})
    assert a.data_part() == b.data_part()
    assert a.data_part() != a.with_overrides(split={"train": 0.7, "val": 0.2, "test": 0.1}).data_part()
