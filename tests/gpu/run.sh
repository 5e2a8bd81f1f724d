#!/usr/bin/env bash
# On a GPU host: the GPU tests, then bench/gpu.py, in under 10 minutes.
# Usage (repository root): tests/gpu/run.sh [WHEELS_DIR]
#   WHEELS_DIR: wheels brought along (no network there); installed with --no-index.
# Uses the active python (a venv with tritond installed, or the one this creates).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
if [ -n "${1:-}" ]; then
  "$PY" -m venv .venv-gpu --system-site-packages   # keep the host's torch / cupy / CUDA builds
  PY=.venv-gpu/bin/python
  "$PY" -m pip install -q --no-index --find-links "$1" -e '.[test]' --no-deps
  "$PY" -m pip install -q --no-index --find-links "$1" -r <("$PY" - <<'PYEOF'
import configparser
c = configparser.ConfigParser(); c.read("setup.cfg")
for line in (c["options"]["install_requires"] + c["options.extras_require"]["test"]).splitlines():
    line = line.strip()
    if line and not line.startswith("#") and not line.startswith("torch"):
        print(line)
PYEOF
)
fi
"$PY" -c 'from tritond import gpus; print("GPUs:", gpus.count())'
timeout 420 "$PY" -m pytest -q -p no:cacheprovider tests/gpu -rs
timeout 150 "$PY" bench/gpu.py --seconds 2
