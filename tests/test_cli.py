"""The command line as a user meets it: real subprocesses, real exit codes, one-line errors."""
import subprocess
import sys

import pytest
import yaml

from pipeline.config import JobConfig


def dcpipe(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_config_prints_the_default_as_yaml():
    out = dcpipe("config")
    assert out.returncode == 0, out.stderr
    assert JobConfig.model_validate(yaml.safe_load(out.stdout)) == JobConfig()


def _cfg_file(tmp_path, data):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("case", ["missing_source", "wrong_columns", "unwritable_workdir", "unknown_key"])
def test_bad_input_is_one_line_exit_2_and_no_traceback(case, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    workdir = tmp_path / "work"
    if case == "missing_source":
        cfg, match = {"source": {"path": str(tmp_path / "absent.csv")}}, "source.path: no such file: "
    elif case == "wrong_columns":
        (tmp_path / "narrow.csv").write_text("1,2,3\n")
        cfg, match = ({"source": {"path": str(tmp_path / "narrow.csv")}, "cluster": {"workers": 1}},
                      "narrow.csv: all 1 records were quarantined")
    elif case == "unwritable_workdir":
        cfg, match, workdir = {}, "cannot create the working folder", blocker / "work"
    else:
        cfg, match = {"train": {"epochz": 1}}, "unknown key 'train.epochz'"
    out = dcpipe("run", "--config", str(_cfg_file(tmp_path, cfg)), "--workdir", str(workdir))
    assert out.returncode == 2, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("dcpipe: error: ") and match in last
    assert "Traceback" not in out.stderr


def test_debug_shows_the_traceback(tmp_path):
    out = dcpipe("config", "--config", str(tmp_path / "absent.yaml"), "--debug")
    assert out.returncode != 0 and "Traceback" in out.stderr and "UserError" in out.stderr


def test_version_is_the_installed_package_metadata():
    from importlib.metadata import version
    out = dcpipe("--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"dcpipe {version('dcpipe')}"
