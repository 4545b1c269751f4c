#!/usr/bin/env bash
# Wheels for a GPU machine that reaches no package registry (run here, before leasing one): the project's
# dependencies that such an image lacks (its python3 3.12 already has torch, numpy, scipy, scikit-learn,
# pandas, matplotlib, numba, pytest), for CPython 3.12 on manylinux x86-64, into .whl/ (git-ignored).
# benchmarks/gpu_check.sh installs them from there with --no-index. Usage: bash benchmarks/gpu_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PKGS=${*:-"librosa==0.11.0 soundfile==0.13.1 soxr==1.0.0 audioread==3.0.1 pooch==1.8.2 platformdirs==4.3.8 decorator==5.2.1 cffi==1.17.1 pycparser==2.22 standard-aifc==3.13.0 standard-chunk==3.13.0 standard-sunau==3.13.0"}
mkdir -p .whl
for p in $PKGS; do
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any -d .whl "$p" || echo "gpu_wheels.sh: no wheel for $p" >&2
done
ls -la .whl
