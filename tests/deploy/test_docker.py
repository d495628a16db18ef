"""deploy/docker, statically (no container engine here): both images install through the script the
Makefile runs, with setup.cfg's pins; the GPU image swaps only the TensorFlow wheel and adds NCCL."""
from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from pipeline.cli import _parser

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "deploy" / "docker"
INSTALL = REPO / "deploy" / "install.sh"


def _dockerfile(name: str) -> str:
    text = (DOCKER / f"{name}.Dockerfile").read_text()
    return re.sub(r"\\\n\s*", " ", text)        # join continued lines


def _instructions(name: str, keyword: str) -> list[str]:
    return [line.split(None, 1)[1] for line in _dockerfile(name).splitlines() if line.startswith(f"{keyword} ")]


def _requirements(tf_pin: str | None = None) -> list[str]:
    env = {"PATH": "/usr/bin:/bin"} | ({"DCPIPE_TF_PIN": tf_pin} if tf_pin else {})
    out = subprocess.run(["bash", str(INSTALL), "--requirements"], capture_output=True, text=True, env=env,
                         check=True)
    return out.stdout.split()


def _setup_cfg_pin(name: str) -> str:
    return re.search(rf"^\s*{re.escape(name)}==([0-9.]+)", (REPO / "setup.cfg").read_text(), re.M).group(1)


@pytest.mark.parametrize("image", ["cpu", "gpu"])
def test_image_installs_through_the_makefiles_install_script(image):
    makefile = (REPO / "Makefile").read_text()
    assert "bash deploy/install.sh $(VENV)" in makefile
    runs = " ".join(_instructions(image, "RUN"))
    assert re.search(r"bash deploy/install\.sh /opt/dcpipe/\.venv\b", runs)
    for source in (s for copy in _instructions(image, "COPY") for s in shlex.split(copy)[:-1]):
        assert (REPO / source).exists(), f"{image}.Dockerfile copies {source}, which is not in the repository"
    copied = {shlex.split(c)[0] for c in _instructions(image, "COPY")}
    assert {"pipeline", "models", "deploy/install.sh"} <= copied
    # what `pip install -e` reads: setup.cfg, pyproject.toml and the README named as long_description
    assert "setup.cfg pyproject.toml README.md ./" in _instructions(image, "COPY")


@pytest.mark.parametrize("image", ["cpu", "gpu"])
def test_image_default_command_is_a_valid_dcpipe_command(image):
    (cmd,) = _instructions(image, "CMD")
    argv = __import__("json").loads(cmd)
    assert argv[0] == "dcpipe" and _parser().parse_args(argv[1:]).workdir.startswith("/data")


def test_images_use_the_python_that_setup_cfg_requires():
    assert re.search(r"python_requires = >=3\.11,<3\.12", (REPO / "setup.cfg").read_text())
    assert _instructions("cpu", "FROM") == ["python:3.11-slim-bookworm"]
    assert "python3.11 -m venv /opt/dcpipe/.venv" in " ".join(_instructions("gpu", "RUN"))


def test_gpu_image_builds_horovod_with_nccl_against_gpu_tensorflow_of_the_pinned_version():
    (base,) = _instructions("gpu", "FROM")
    assert re.fullmatch(r"nvidia/cuda:12\.\d+\.\d+-cudnn-devel-ubuntu\d+\.\d+", base)
    runs = " ".join(_instructions("gpu", "RUN"))
    assert "HOROVOD_GPU_OPERATIONS=NCCL" in runs and "libnccl-dev" in runs
    assert 'DCPIPE_TF_PIN="tensorflow==${TF_VERSION}"' in runs
    assert _instructions("gpu", "ARG") == [f"TF_VERSION={_setup_cfg_pin('tensorflow-cpu')}"]


def test_install_script_lists_setup_cfg_requirements_and_swaps_only_tensorflow():
    cpu = _requirements()
    gpu = _requirements(f"tensorflow=={_setup_cfg_pin('tensorflow-cpu')}")
    assert f"tensorflow-cpu=={_setup_cfg_pin('tensorflow-cpu')}" in cpu
    assert set(cpu) ^ set(gpu) == {f"tensorflow-cpu=={_setup_cfg_pin('tensorflow-cpu')}",
                                   f"tensorflow=={_setup_cfg_pin('tensorflow-cpu')}"}
    for name in ("horovod", "numpy", "dask-jobqueue"):
        assert f"{name}=={_setup_cfg_pin(name)}" in gpu
