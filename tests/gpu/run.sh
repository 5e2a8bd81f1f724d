#!/usr/bin/env bash
# The one GPU check of issue 12, for a GPU machine without network, in under 10 minutes:
#   here:  bash tests/gpu/bundle.sh          (builds .gpuwhl/: tritond + the wheels the image lacks)
#   there: bash tests/gpu/run.sh             (device tool: carry [".gpuwhl"], timeout_s 590)
# Installs .gpuwhl/*.whl into /tmp/site (no index, no deps: the image's torch / cupy / CUDA
# builds stay), then runs, each under its own time limit and each writing into $OUT:
#   env.txt        nvidia-smi, versions, what tritond.gpus counts
#   gpu_tests.log  tests/gpu (-rs: every skip says why)          + gpu_tests.xml (JUnit)
#   bench.log      bench/gpu.py (identity through CUDA shm, CNN)  + gpu_bench.json
#   scaling.log    bench/scaling.py: --frontend-processes 1..4 on the host's cores (issue 15 item 4)
#   suite.log      the whole suite on the GPU host (tests/protos, tests/deploy left out:
#                  they need grpcio-tools / hadolint, not a GPU)  + suite.xml
# SUITE=0 skips the whole suite. These 8 files come back ($OUT: at most 8).
# The tests run from a copy of the tree without its tritond/ folder, so that the installed
# package (with its frontend/, workers/ ... mapped in) is the one imported.
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
W=${WHEELS:-.gpuwhl}
start=$(date +%s)
left() { echo $(( ${1} - ($(date +%s) - start) )); }

if ls "$W"/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$W"/*.whl > /tmp/install.log 2>&1 || { cat /tmp/install.log; exit 1; }
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
else
  echo "no wheels in $W: using the tritond this python already has"
fi
T=/tmp/tritond-tree; rm -rf "$T"; mkdir -p "$T"
tar --exclude=./.git --exclude=./.gpuwhl --exclude=./.venv --exclude=./tritond -cf - . | tar -xf - -C "$T"
cd "$T"

{
  date -u; nvidia-smi -L; nproc
  "$PY" - <<'PY'
import importlib, tritond
from tritond import gpus
print("tritond from", tritond.__file__, "| GPUs counted:", gpus.count())
for m in ("torch", "cupy", "onnxruntime", "tensorrt", "pynvml", "tritonclient", "grpc",
          "google.protobuf", "numpy"):
    try:
        mod = importlib.import_module(m)
        extra = ""
        if m == "onnxruntime":
            extra = mod.get_available_providers()
        if m == "torch":
            extra = f"cuda={mod.version.cuda} available={mod.cuda.is_available()}"
        print(m, getattr(mod, "__version__", "?"), extra)
    except Exception as exc:  # noqa: BLE001
        print(m, "absent:", exc)
PY
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

echo "== tests/gpu"
timeout "$(left 200)" "$PY" -m pytest -q -p no:cacheprovider --timeout=120 -rs tests/gpu \
  --junitxml="$OUT/gpu_tests.xml" > "$OUT/gpu_tests.log" 2>&1
echo "tests/gpu rc=$?"; tail -n 25 "$OUT/gpu_tests.log"

echo "== bench/gpu.py"
timeout "$(left 320)" "$PY" bench/gpu.py --seconds 1.5 --json "$OUT/gpu_bench.json" \
  > "$OUT/bench.log" 2>&1
echo "bench rc=$?"; cat "$OUT/bench.log" | tail -n 20

echo "== bench/scaling.py"
timeout "$(left 400)" "$PY" bench/scaling.py --seconds 4 > "$OUT/scaling.log" 2>&1
echo "scaling rc=$?"; cat "$OUT/scaling.log"

[ "${SUITE:-1}" = 0 ] && exit 0          # SUITE=0: the GPU tests and the benchmark only
echo "== whole suite ($(left 570) s left)"
timeout "$(left 570)" "$PY" -m pytest -q -p no:cacheprovider --timeout=90 \
  --ignore=tests/protos --ignore=tests/deploy --junitxml="$OUT/suite.xml" > "$OUT/suite.log" 2>&1
echo "suite rc=$? (124: out of time; the log has what ran)"; tail -n 30 "$OUT/suite.log"
echo "/dev/shm left: $(ls /dev/shm | head -20 | tr '\n' ' ')"
