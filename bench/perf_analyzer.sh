#!/usr/bin/env bash
# bench/perf_analyzer.sh — Triton's own load tool against tritond, in each mode users run it.
#   PA=/path/to/perf_analyzer  LIBS=/dir/with/libb64.so.0d+libcudart.so.12  bench/perf_analyzer.sh
# Without PA, the binary is taken from the tritonclient 2.51.0 manylinux wheel (pip download
# into $CACHE; PyPI's perf-analyzer package is a placeholder), and LIBS from the anchors'
# nvidia-pytriton (its bundled libb64 and libcudart, which the binary links against).
# Starts this checkout's tritond on the bundled model_repository plus bench/sequences.py's
# sequence model and bench/decoupled.py's decoupled model, then runs perf_analyzer over HTTP
# and gRPC: sync, async, system shared memory (inputs and outputs), BYTES, sequences
# (unary and streaming) and a decoupled model over a stream. Prints one line per mode and
# exits 1 when any mode failed. Its throughput figures are a smoke check, not a benchmark.
set -uo pipefail
SELF=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${CACHE:-/tmp/tritond-perf-analyzer}
mkdir -p "$CACHE"
if [[ -z ${PA:-} ]]; then
  PA=$CACHE/tritonclient-2.51.0.data/data/bin/perf_analyzer
  if [[ ! -x $PA ]]; then
    (cd "$CACHE" && python3 -m pip download -q --no-deps tritonclient==2.51.0 -d . &&
      unzip -o -q tritonclient-2.51.0-py3-none-manylinux1_x86_64.whl \
        'tritonclient-2.51.0.data/data/bin/perf_analyzer' && chmod +x "$PA") || exit 2
  fi
fi
if [[ -z ${LIBS:-} ]]; then
  P=$(ls -d /tmp/anchors-env/triton/lib/python3*/site-packages/nvidia_pytriton.libs 2>/dev/null | head -1)
  [[ -n $P ]] || { echo "no nvidia_pytriton.libs: run the anchors' setup.sh, or set LIBS"; exit 2; }
  LIBS=$CACHE/libs; mkdir -p "$LIBS"
  ln -sf "$P"/libb64-*.so.0d "$LIBS/libb64.so.0d"
  ln -sf "$(ls "$P"/libcudart-*.so.12* | head -1)" "$LIBS/libcudart.so.12"
fi
export LD_LIBRARY_PATH=$LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

REPO=$(mktemp -d /tmp/pa-repo-XXXX)
cp -r "$SELF"/model_repository/*/ "$REPO"/
PY=$SELF/.venv/bin/python
"$PY" "$SELF/bench/decoupled.py" --write-repo "$REPO" >/dev/null
"$PY" -c "import sys, pathlib; sys.path.insert(0, '$SELF/bench'); import sequences; sequences.write_repo(pathlib.Path('$REPO'))"
echo '{"data":[{"INPUT":[1]}]}' > "$REPO/seq.json"
echo '{"data":[{"N":[3]}]}' > "$REPO/n.json"

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
H=$(port); G=$(port); M=$(port)
"$SELF/.venv/bin/tritond" --model-repository "$REPO" --http-port "$H" --grpc-port "$G" \
  --metrics-port "$M" --allow-client-shm=true > "$REPO/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$REPO"' EXIT
for _ in $(seq 120); do
  curl -sf "localhost:$H/v2/health/ready" >/dev/null && break; sleep 0.5
done

failed=0
run() {  # NAME, then perf_analyzer's arguments
  local name=$1; shift
  local out
  out=$(timeout 120 "$PA" "$@" --concurrency-range 2 --measurement-interval 1500 \
        --stability-percentage 60 --max-trials 6 2>&1)
  local tput
  tput=$(grep -m1 -oE "Throughput: [0-9.]+ infer/sec" <<<"$out")
  if [[ $? -eq 0 && -n $tput ]] && ! grep -qiE "error|failed to" <<<"$out"; then
    printf "ok      %-34s %s\n" "$name" "$tput"
  else
    failed=1
    printf "FAILED  %-34s %s\n" "$name" "$(grep -iE "error|fail" <<<"$out" | head -2 | tr '\n' ' ')"
  fi
}
run "http sync simple"            -m simple -u "localhost:$H"
run "grpc sync simple"            -m simple -i grpc -u "localhost:$G"
run "grpc async add_sub"          -m add_sub -i grpc -u "localhost:$G" --async
run "http system shm in+out"      -m simple -u "localhost:$H" --shared-memory system --output-shared-memory-size 1024
run "grpc system shm in+out"      -m simple -i grpc -u "localhost:$G" --shared-memory system --output-shared-memory-size 1024
run "http BYTES simple_string"    -m simple_string -u "localhost:$H"
run "http variable shape (-1)"     -m identity_fp32 -u "localhost:$H" --shape INPUT0:64
run "grpc batch 4 simple"         -m simple -i grpc -u "localhost:$G" -b 4
run "grpc sequences"              -m seq_accum -i grpc -u "localhost:$G" --sequence-length 10 --input-data "$REPO/seq.json"
run "http sequences"              -m seq_accum -u "localhost:$H" --sequence-length 10 --input-data "$REPO/seq.json"
run "grpc streaming sequences"    -m seq_accum -i grpc -u "localhost:$G" --streaming --sequence-length 5 --input-data "$REPO/seq.json"
run "grpc streaming decoupled"    -m stream100 -i grpc -u "localhost:$G" --streaming --input-data "$REPO/n.json"
exit $failed
