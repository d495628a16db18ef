"""The exported SavedModel serves raw records without dcpipe: ``serve_raw`` (the stored pixels
transform as graph ops) against ``serve`` on the inputs dcpipe's stored transform makes, in a fresh
process that imports only TensorFlow and NumPy."""
import json
import subprocess
import sys

import numpy as np
import pytest

from tests.models.helpers import rank_env

CHILD = """
import json, sys
import numpy as np
import tensorflow as tf
model = tf.saved_model.load(sys.argv[1])
raw, transformed = np.load(sys.argv[2]), np.load(sys.argv[3])
a = model.serve_raw(tf.constant(raw)).numpy()
b = model.serve(tf.constant(transformed)).numpy()
sig = model.signatures["serve_raw"]
print(json.dumps({"max_abs_diff": float(np.abs(a - b).max()), "argmax_equal": bool((a.argmax(1) == b.argmax(1)).all()),
                  "shape": list(a.shape), "inputs": {k: v.shape.as_list() for k, v in sig.structured_input_signature[1].items()},
                  "dcpipe_imported": sorted(m for m in sys.modules if m.split(".")[0] in ("pipeline", "models"))}))
"""


@pytest.mark.horovod
def test_serve_raw_matches_serve_on_transformed_rows_in_a_process_without_dcpipe(trained, tmp_path):
    workdir, run_id, lines = trained
    from models.export import load_bundle
    bundle_dir = workdir / "runs" / run_id / "bundle"
    bundle = load_bundle(bundle_dir)
    raw = np.array([[float(v) for v in line.split(",")[:-1]] for line in lines], dtype=np.float32)  # label left out
    np.save(tmp_path / "raw.npy", raw)
    np.save(tmp_path / "transformed.npy", bundle.transform(raw))
    env = {k: v for k, v in rank_env().items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", CHILD, str(bundle_dir / "model"), str(tmp_path / "raw.npy"),
                           str(tmp_path / "transformed.npy")], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["dcpipe_imported"] == []
    assert got["shape"] == [len(lines), 10] and got["inputs"] == {"records": [None, 784]}
    assert got["max_abs_diff"] < 1e-5 and got["argmax_equal"], got
