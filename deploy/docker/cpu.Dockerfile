# dcpipe, CPU: the same environment `make venv` builds (deploy/install.sh: TensorFlow CPU, Horovod
# built against it with Gloo and, since Open MPI is installed here, MPI; then dcpipe).
#   docker build -f deploy/docker/cpu.Dockerfile -t dcpipe:cpu .
#   docker run --rm -v "$PWD/dcpipe-work:/data/dcpipe-work" dcpipe:cpu dcpipe run --workdir /data/dcpipe-work
# Python 3.11 as setup.cfg requires: Debian 12 (bookworm) ships it.
FROM python:3.11-slim-bookworm

ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1
# g++ and cmake build Horovod; Open MPI for mpirun/srun launches; ssh for MPIJob launcher -> workers.
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends g++ cmake make openmpi-bin libopenmpi-dev \
      openssh-client openssh-server \
 && mkdir -p /run/sshd \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/dcpipe
COPY setup.cfg pyproject.toml README.md ./
COPY deploy/install.sh deploy/install.sh
COPY pipeline pipeline
COPY models models
RUN bash deploy/install.sh /opt/dcpipe/.venv \
 && rm -rf /root/.cache

ENV PATH=/opt/dcpipe/.venv/bin:$PATH \
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
WORKDIR /data
CMD ["dcpipe", "run", "--workdir", "/data/dcpipe-work"]
