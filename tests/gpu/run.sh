#!/usr/bin/env bash
# The one GPU check of issue 12, for a GPU machine without network, in under 10 minutes:
#   here:  bash tests/gpu/bundle.sh          (builds .gpuwhl/: tritond + the wheels the image lacks)
#   there: bash tests/gpu/run.sh             (device tool: carry [".gpuwhl"], timeout_s 590)
# Installs .gpuwhl/*.whl into /tmp/site (no index, no deps: the image's torch / cupy / CUDA
# builds stay), then runs, each under its own time limit and each writing into $OUT:
#   env.txt        nvidia-smi, versions, what tritond.gpus counts
#   gpu_tests.log  tests/gpu (-rs: every skip says why)          + gpu_tests.xml (JUnit)
#   gpu_servers.log the last lines of each tests/gpu server's log
#   bench.log      bench/gpu.py (identity through CUDA shm, CNN)  + gpu_bench.json
#   scaling.log    bench/scaling.py: --frontend-processes 1..4 on the host's cores (issue 15 item 4)
#   suite.log      the whole suite on the GPU host, beside tests/gpu (tests/protos and
#                  tests/deploy left out: they need grpcio-tools / hadolint, not a GPU)
# These files come back ($OUT: at most 8). Phase deadlines: below.
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

# Each phase has a deadline in seconds from the start (env overrides; 0 skips it), so that
# a first diagnostic run can stop early and leave device time for a second one:
#   SUITE_T  the whole suite (xdist, SUITE_XDIST workers, default 12), started FIRST in the
#            background beside tests/gpu (tests, not timings: the load does not matter), and
#            waited for before the benchmarks, which then run on a quiet host; stopped with
#            SIGINT at its deadline, so pytest still prints what failed among what ran
#   GPU_T    tests/gpu
#   CPU_T    only the CPU suite's files that touch CUDA, BF16 or device counts (xdist)
#   BENCH_T  bench/gpu.py          SCALE_T  bench/scaling.py
phase() { [ "${1}" -gt 0 ] && [ "$(left "$1")" -gt 10 ]; }
stop_at() { timeout -s INT -k 20 "$(left "$1")" "${@:2}"; }

suite_pid=""
SUITE_T=${SUITE_T:-330}
if phase "$SUITE_T"; then
  echo "== whole suite in the background (until ${SUITE_T} s)"
  # SUITE_FILES: only these paths (a rerun of what failed); else the whole suite without
  # tests/protos and tests/deploy (grpcio-tools, hadolint), tests/integration/test_older_clients.py
  # (pip-installs old tritonclient releases: no network there) and tests/test_docs.py (checks
  # paths under tritond/, which this copy of the tree leaves out on purpose)
  stop_at "$SUITE_T" "$PY" -m pytest -q -p no:cacheprovider --timeout=120 -n "${SUITE_XDIST:-12}" \
    --dist loadfile ${SUITE_FILES:---ignore=tests/protos --ignore=tests/deploy --ignore=tests/gpu \
    --ignore=tests/integration/test_older_clients.py --ignore=tests/test_docs.py} \
    > "$OUT/suite.log" 2>&1 &
  suite_pid=$!
fi

if phase "${GPU_T:-200}"; then
  echo "== tests/gpu"
  mkdir -p /tmp/gpulogs
  TRITOND_TEST_LOGS=/tmp/gpulogs stop_at "${GPU_T:-200}" "$PY" -m pytest -q -p no:cacheprovider --timeout=120 \
    -n 0 -rs tests/gpu --junitxml="$OUT/gpu_tests.xml" > "$OUT/gpu_tests.log" 2>&1
  echo "tests/gpu rc=$?"; grep -v "^DEBUG" "$OUT/gpu_tests.log" | tail -n 40
  for f in /tmp/gpulogs/tritond-test-*.log; do       # each tests/gpu server's last lines
    [ -e "$f" ] && { echo "== $f"; tail -n 30 "$f"; }
  done > "$OUT/gpu_servers.log" 2>&1
fi

if phase "${CPU_T:-0}"; then
  echo "== CPU-suite files that touch CUDA / BF16 / device counts"
  files=$(grep -rlisE "cuda|KIND_GPU|bf16|gpus" tests --include='test_*.py' \
          | grep -vE "^tests/(gpu|protos|deploy)/" | sort)
  stop_at "${CPU_T}" "$PY" -m pytest -q -p no:cacheprovider --timeout=90 -n 8 --dist loadfile $files \
    > "$OUT/cpu_gpuish.log" 2>&1
  echo "cpu files rc=$?"; grep -E "^(FAILED|ERROR)|passed|failed" "$OUT/cpu_gpuish.log" | tail -n 30
fi

if [ -n "$suite_pid" ]; then
  wait "$suite_pid"; echo "suite rc=$? (124: stopped at its deadline; the log has what ran)"
  # a suite stopped mid-way leaves its servers (own sessions): they must not load the benchmarks
  pkill -f "tritond.cli" 2>/dev/null; sleep 3; pkill -9 -f "^tritond" 2>/dev/null; sleep 1
  grep -E "^(FAILED|ERROR)" "$OUT/suite.log" | head -40; tail -n 3 "$OUT/suite.log"
fi

if phase "${BENCH_T:-420}"; then
  echo "== bench/gpu.py"
  stop_at "${BENCH_T:-420}" "$PY" bench/gpu.py --seconds 1.5 \
    --json "$OUT/gpu_bench.json" > "$OUT/bench.log" 2>&1
  echo "bench rc=$?"; tail -n 30 "$OUT/bench.log"
fi

if phase "${SCALE_T:-540}"; then
  echo "== bench/scaling.py"
  stop_at "${SCALE_T:-540}" "$PY" bench/scaling.py --seconds "${SCALE_S:-4}" \
    > "$OUT/scaling.log" 2>&1
  echo "scaling rc=$?"; cat "$OUT/scaling.log"
fi
echo "/dev/shm left: $(ls /dev/shm | head -20 | tr '\n' ' ')"
