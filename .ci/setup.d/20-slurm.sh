#!/usr/bin/env bash
# SLURM and munge for the `slurm` tests (tests/deploy/): they start their own single-node cluster.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
export PATH=$PATH:/usr/sbin:/sbin
command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
  && command -v sbatch >/dev/null && exit 0
apt-get update -qq
apt-get install -y -qq slurm-wlm munge
