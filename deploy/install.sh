#!/usr/bin/env bash
# Create (or complete) the dcpipe virtual environment, in the order the stack needs:
#   1. TensorFlow (CPU) with the numpy pin,
#   2. Horovod built from source against that TensorFlow (Gloo; MPI too where mpicxx exists),
#   3. the project itself with its pinned dependencies.
# Pins are read from setup.cfg so that they live in one place. Used by the Makefile, .ci/run and
# deploy/docker/*.Dockerfile.  Usage: deploy/install.sh VENV_DIR [EXTRAS]
#   DCPIPE_TF_PIN=tensorflow==X.Y.Z  installs that TensorFlow wheel instead of setup.cfg's tensorflow-cpu
#   deploy/install.sh --requirements [EXTRAS]  prints the requirements it would install, and exits
set -euo pipefail

venv=${1:?usage: deploy/install.sh VENV_DIR [EXTRAS]}
extras=${2:-}
here=$(cd "$(dirname "$0")/.." && pwd)
pin() { grep -oE "^\s*$1==[0-9.]+" "$here/setup.cfg" | tr -d ' '; }
tf_pin=${DCPIPE_TF_PIN:-$(pin tensorflow-cpu)}
np_pin=$(pin numpy)
hvd_pin=$(pin horovod)
st_pin=$(pin setuptools)   # < 81: TensorBoard 2.18 (bound by TensorFlow 2.18.1) needs pkg_resources

# Requirement lines of setup.cfg's install_requires (no argument) or of one extra (its name).
requirements() {
  awk -v extra="${1:-}" '/^\[/{sec=$0}
    (extra=="" && /^install_requires *=/) || (extra!="" && sec=="[options.extras_require]" && $0~"^"extra" *=") {f=1; next}
    f && /^[^ \t#]/ {f=0}
    f && NF && $1 !~ /^#/ {print $1}' "$here/setup.cfg"
}
# dcpipe's own requirements with DCPIPE_TF_PIN in place of the tensorflow-cpu pin.
project_requirements() {
  requirements | grep -v '^tensorflow-cpu==' ; echo "$tf_pin"
  local extra; for extra in ${extras//,/ }; do requirements "$extra"; done
}
if [[ $venv == --requirements ]]; then project_requirements; exit 0; fi

[[ -x $venv/bin/python ]] || python3 -m venv "$venv"
py=$venv/bin/python
pip() { "$py" -m pip --disable-pip-version-check "$@"; }

echo "[install] pip, $st_pin, wheel"
pip install -q -U pip "$st_pin" wheel

echo "[install] $tf_pin $np_pin"
pip install -q "$tf_pin" "$np_pin"

if ! "$py" -c "import horovod.tensorflow" 2>/dev/null; then
  export HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1
  if command -v mpicxx >/dev/null 2>&1; then export HOROVOD_WITH_MPI=1; mpi=mpi; else export HOROVOD_WITHOUT_MPI=1; mpi=nompi; fi
  # A built wheel is cached per TensorFlow pin and controller set: rebuilding takes minutes.
  cache=${DCPIPE_WHEEL_CACHE:-$HOME/.cache/dcpipe/wheels}/${hvd_pin}-${tf_pin}-${mpi}${HOROVOD_GPU_OPERATIONS:+-$HOROVOD_GPU_OPERATIONS}
  if ! ls "$cache"/horovod-*.whl >/dev/null 2>&1; then
    echo "[install] building $hvd_pin against $tf_pin ($mpi); this takes a few minutes"
    mkdir -p "$cache.tmp"
    pip wheel -q --no-build-isolation --no-cache-dir --no-deps -w "$cache.tmp" "$hvd_pin"
    rm -rf "$cache" && mv "$cache.tmp" "$cache"
  fi
  pip install -q --no-deps "$cache"/horovod-*.whl
  # Horovod's own runtime dependencies (cloudpickle, psutil, pyyaml, packaging, cffi).
  pip install -q "$np_pin" cloudpickle psutil pyyaml packaging cffi
fi

echo "[install] dcpipe${extras:+[$extras]}"
if [[ $tf_pin == "$(pin tensorflow-cpu)" ]]; then
  pip install -q -e "$here${extras:+[$extras]}"
else  # another TensorFlow wheel (the GPU one): keep pip from adding tensorflow-cpu over it
  mapfile -t reqs < <(project_requirements)
  pip install -q "${reqs[@]}"
  pip install -q --no-deps -e "$here"
fi

build=$(TF_CPP_MIN_LOG_LEVEL=3 "$venv/bin/horovodrun" --check-build 2>/dev/null)
for want in TensorFlow Gloo; do
  grep -q "\[X\] $want" <<<"$build" \
    || { echo "install.sh: horovodrun --check-build does not list $want; remove $venv and retry" >&2; exit 1; }
done
echo "[install] horovodrun --check-build lists TensorFlow and Gloo"
