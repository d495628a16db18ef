"""TensorBoard starts from the venv and serves HTTP: a real process on a free port, stopped by its pid."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


from tests.deploy.conftest import SETUP_SCRIPT

INSTALL_SH = SETUP_SCRIPT.parents[2] / "deploy" / "install.sh"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.status, resp.read().decode(errors="replace")


def test_tensorboard_serves_a_logdir(tmp_path):
    tensorboard = Path(sys.executable).with_name("tensorboard")
    assert tensorboard.is_file(), f"{tensorboard}: not installed in the venv"
    port = _free_port()
    log = open(tmp_path / "tensorboard.log", "w")
    proc = subprocess.Popen([str(tensorboard), "--logdir", str(tmp_path / "runs"), "--host", "127.0.0.1",
                             "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, answer = time.monotonic() + 60, None
        while time.monotonic() < deadline and proc.poll() is None and answer is None:
            try:
                answer = _get(f"http://127.0.0.1:{port}/data/logdir")
            except OSError:
                time.sleep(0.5)
        assert answer is not None, f"tensorboard exited {proc.returncode}: {(tmp_path / 'tensorboard.log').read_text()[-800:]}"
        assert answer[0] == 200 and str(tmp_path / "runs") in answer[1]
        assert _get(f"http://127.0.0.1:{port}/")[0] == 200
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()


def test_install_sh_keeps_setuptools_below_81():
    """setuptools 81 removed pkg_resources, which TensorBoard 2.18 (bound by tensorflow-cpu 2.18.1) imports."""
    reqs = subprocess.run(["bash", str(INSTALL_SH), "--requirements"], capture_output=True, text=True, check=True)
    pins = dict(line.split("==") for line in reqs.stdout.split() if "==" in line)
    assert int(pins["setuptools"].split(".")[0]) < 81
    assert pins["tensorflow-cpu"] == "2.18.1"
    assert '"$st_pin"' in INSTALL_SH.read_text()
