#!/usr/bin/env bash
# bench/profile.sh [CONNS] [SECONDS] — per-process CPU profile of tritond under wrk load.
# Starts $TRITOND (default .venv/bin/tritond) on the anchors' models, drives
# HTTP JSON add_sub with wrk, py-spy-records every tritond process, and prints the
# hottest functions (self time) per process plus each process's CPU seconds.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
CONNS=${1:-8}; SECS=${2:-8}
TRITOND=${TRITOND:-$HERE/.venv/bin/tritond}
PYSPY=${PYSPY:-$HERE/.venv/bin/py-spy}
MODELS=${MODELS:-/tmp/tritond-anchors/models/triton}
BODIES=${BODIES:-/tmp/bodies}
BODY=${BODY:-addsub.json}; URL_PATH=${URL_PATH:-/v2/models/add_sub/infer}
OUT=${OUT:-/tmp/tritond-profile}; mkdir -p "$OUT"; rm -f "$OUT"/*.txt
PORT=${PORT:-18700}
"$TRITOND" --model-repository "$MODELS" --http-port $PORT --grpc-port $((PORT+1)) --metrics-port $((PORT+2)) \
  --http-address 127.0.0.1 --grpc-address 127.0.0.1 --metrics-address 127.0.0.1 >"$OUT/server.log" 2>&1 &
SRV=$!
trap 'kill $SRV 2>/dev/null; wait $SRV 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf -o /dev/null localhost:$PORT/v2/health/ready && break; sleep 0.2; done
HDR=""; [[ -f $BODIES/$BODY.hlen ]] && HDR=$(cat $BODIES/$BODY.hlen)
CT=application/json; [[ -n $HDR ]] && CT=application/octet-stream
export BODY=$BODIES/$BODY CTYPE=$CT HDR_LEN=$HDR
wrk -t1 -c$CONNS -d2s -s /tmp/tritond-anchors/lib/wrk_post.lua http://127.0.0.1:$PORT$URL_PATH >/dev/null
pids=$(pgrep -P $SRV || true)   # children are named "tritond: <role>" (setproctitle)
declare -A before
for p in $SRV $pids; do before[$p]=$(awk '{print $14+$15}' /proc/$p/stat 2>/dev/null || echo 0); done
for p in $SRV $pids; do "$PYSPY" record ${PYSPY_EXTRA:-} --nonblocking -r 200 -d $SECS -f raw -o "$OUT/$p.txt" --pid $p >/dev/null 2>&1 & done
wrk -t1 -c$CONNS -d${SECS}s -s /tmp/tritond-anchors/lib/wrk_post.lua http://127.0.0.1:$PORT$URL_PATH | grep -E "Requests/sec|WRKJSON"
sleep 1
hz=$(getconf CLK_TCK)
for p in $SRV $pids; do
  name=$(tr '\0' ' ' </proc/$p/cmdline | cut -c1-60)
  [[ -e /proc/$p/stat ]] || continue
  cpu=$(( $(awk '{print $14+$15}' /proc/$p/stat) - ${before[$p]} ))
  role=$(grep -o "tritond-[a-z0-9-]*" /proc/$p/environ 2>/dev/null | head -1 || true)
  echo "== pid $p cpu ${cpu} ticks/${hz}Hz over ~$((SECS+1))s: $name"
  [[ -f $OUT/$p.txt ]] && python3 - "$OUT/$p.txt" <<'PY'
import sys, collections
self_t = collections.Counter(); total = 0
for line in open(sys.argv[1]):
    stack, _, n = line.rstrip().rpartition(" ")
    if not stack: continue
    n = int(n); total += n
    frames = stack.split(";")
    self_t[frames[-1]] += n
for f, n in self_t.most_common(14):
    print(f"  {100*n/total:5.1f}%  {f[:150]}")
PY
done
