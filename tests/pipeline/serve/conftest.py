"""The one trained run the serving tests share (trained once for the package: about a minute)."""
import pytest

from pipeline.job import run
from tests.conftest import small_config, take_balanced
from tests.models.helpers import horovodrun


@pytest.fixture(scope="package")
def trained(tmp_path_factory, mnist_lines):
    """A workdir with one finished run (400 real MNIST rows, 1 epoch, 2 ranks) and 20 raw lines it never saw."""
    horovodrun()
    tmp = tmp_path_factory.mktemp("serve")
    csv = tmp / "mnist_400.csv"
    csv.write_text("\n".join(take_balanced(mnist_lines, 40)) + "\n")
    summary = run(small_config(csv), workdir=tmp / "work", log=lambda *_: None, show_progress=False)
    assert summary["state"] == "finished"
    seen = set(take_balanced(mnist_lines, 40))
    return tmp / "work", summary["run_id"], [line for line in take_balanced(mnist_lines, 42) if line not in seen]
