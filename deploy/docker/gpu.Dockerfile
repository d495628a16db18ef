# dcpipe, GPU: CUDA + cuDNN base, the GPU TensorFlow wheel at the same version as setup.cfg's
# tensorflow-cpu pin, and Horovod built against it with NCCL for GPU allreduce (plus Gloo and MPI).
# deploy/install.sh installs the rest exactly as `make venv` does.
#   docker build -f deploy/docker/gpu.Dockerfile -t dcpipe:gpu .
#   docker run --rm --gpus all -v "$PWD/dcpipe-work:/data/dcpipe-work" dcpipe:gpu dcpipe run --workdir /data/dcpipe-work
# TensorFlow 2.18 is built against CUDA 12.5 and cuDNN 9.
FROM nvidia/cuda:12.5.1-cudnn-devel-ubuntu22.04

ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1
# Python 3.11 (Ubuntu 22.04's own is 3.10) from the deadsnakes archive; NCCL headers for Horovod.
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends software-properties-common gpg-agent \
 && add-apt-repository -y ppa:deadsnakes/ppa \
 && apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends python3.11 python3.11-venv python3.11-dev g++ cmake make \
      libnccl2 libnccl-dev openmpi-bin libopenmpi-dev openssh-client openssh-server \
 && mkdir -p /run/sshd \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/dcpipe
COPY setup.cfg pyproject.toml README.md ./
COPY deploy/install.sh deploy/install.sh
COPY pipeline pipeline
COPY models models
# install.sh reuses a venv that exists: create it with Python 3.11 first.
# DCPIPE_TF_PIN swaps the tensorflow-cpu pin for the GPU wheel of the same version.
ARG TF_VERSION=2.18.1
RUN python3.11 -m venv /opt/dcpipe/.venv \
 && DCPIPE_TF_PIN="tensorflow==${TF_VERSION}" HOROVOD_GPU_OPERATIONS=NCCL \
      bash deploy/install.sh /opt/dcpipe/.venv \
 && rm -rf /root/.cache

ENV PATH=/opt/dcpipe/.venv/bin:$PATH \
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
WORKDIR /data
CMD ["dcpipe", "run", "--workdir", "/data/dcpipe-work"]
