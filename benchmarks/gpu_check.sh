#!/usr/bin/env bash
# The GPU check in one command, on a fresh GPU machine with this project's files:
#
#   bash benchmarks/gpu_check.sh [OUT_DIR] [gpu_check.py flags...]     (OUT_DIR: $OUT or runs/gpu)
#
# 1. Uses the machine's python3 and its CUDA torch (a CUDA-enabled torch from the registry is fine here,
#    never in CI). 2. Installs the project's other dependencies that are missing: from wheels carried in
#    .whl/ (made beforehand by benchmarks/gpu_wheels.sh, for machines that reach no registry), else from the
#    registry. 3. Runs benchmarks/gpu_check.py (the gpu-marked tests, then every measurement) under a
#    470 s limit, so the whole command stays inside 8 minutes; its CSV, Markdown and test log land in OUT_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT_DIR=${1:-${OUT:-runs/gpu}}
shift || true
export PYTHONUNBUFFERED=1
"$PY" -c 'import torch; import sys; print("torch", torch.__version__, "CUDA", torch.version.cuda, "GPU:",
torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"); sys.exit(0 if torch.cuda.is_available() else 3)' \
  || { echo "gpu_check.sh: torch sees no CUDA device here (install a CUDA build of torch, or run" \
            "python benchmarks/gpu_check.py --device cpu --quick)" >&2; exit 2; }
missing=$("$PY" - <<'PYEOF'
import importlib.util
need = {"numpy": "numpy", "scipy": "scipy", "sklearn": "scikit-learn", "joblib": "joblib", "librosa": "librosa",
        "soundfile": "soundfile", "soxr": "soxr", "pandas": "pandas", "tqdm": "tqdm", "matplotlib": "matplotlib",
        "threadpoolctl": "threadpoolctl", "pytest": "pytest"}
print(" ".join(pkg for mod, pkg in need.items() if importlib.util.find_spec(mod) is None))
PYEOF
)
if [ -n "$missing" ]; then
  echo "gpu_check.sh: installing $missing" >&2
  if compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/gpu_check_site .whl/*.whl
    export PYTHONPATH="/tmp/gpu_check_site${PYTHONPATH:+:$PYTHONPATH}"
  else
    "$PY" -m pip install -q $missing   # torch is already there: nothing here asks for another
  fi
fi
mkdir -p "$OUT_DIR"
timeout 470 "$PY" benchmarks/gpu_check.py --out "$OUT_DIR" "$@"
