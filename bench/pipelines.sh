#!/usr/bin/env bash
# bench/pipelines.sh — issue 10's benchmark: a two-step ensemble (preprocess -> identity)
# and a BLS model calling add_sub, at 1, 8 and 64 connections (HTTP/JSON, wrk), tritond vs
# Triton 2.51 in one run, with the per-step overhead of a pipeline in µs.
#   KINDS (default "triton tritond"), DURATION (10), WARMUP (2) pass through.
#   TRITOND_CHECKOUT: the checkout whose .venv/bin/tritond is measured (default: this one).
# Uses the anchors harness (start_server.sh, stop_server.sh, lib/loadgen.py, its venvs);
# the anchors folder is copied to a scratch dir and its models/triton replaced by
# bench/pipelines/models, so both servers load exactly the same repository.
set -euo pipefail
SELF=$(cd "$(dirname "$0")/.." && pwd)
export TRITOND_CHECKOUT=${TRITOND_CHECKOUT:-$SELF}
SRC=${ANCHORS:-$SELF/../shared/anchors}
WORK=${ANCHORS_SCRATCH:-/tmp/tritond-pipelines-bench}
KINDS=${KINDS:-triton tritond}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
BASE=${ANCHORS_PORT_BASE:-18400}
rm -rf "$WORK" && mkdir -p "$WORK"
cp -r "$SRC/." "$WORK/"
chmod -R u+w "$WORK"
rm -rf "$WORK/models/triton" && cp -r "$SELF/bench/pipelines/models" "$WORK/models/triton"
"$WORK/setup.sh" >&2
PY=${ANCHORS_ENV:-/tmp/anchors-env}/triton/bin/python
PID=""
cleanup() { if [[ -n $PID ]]; then "$WORK/stop_server.sh" "$PID" || true; PID=""; fi; }
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM
reports=()
i=0
for kind in $KINDS; do
  port=$((BASE + 10 * i)); i=$((i + 1))
  PID=$("$WORK/start_server.sh" "$kind" "$port" | tail -n 1)
  PYTHONPATH="$WORK/lib" "$PY" "$SELF/bench/pipelines/run.py" --measure --kind "$kind=$port" \
    --work "$WORK" --duration "$DURATION" --warmup "$WARMUP" >"$WORK/$kind.json"
  reports+=("$WORK/$kind.json")
  cleanup
done
echo
echo "## pipelines: tritond vs Triton ($(date -u '+%Y-%m-%d %H:%M UTC'), ${DURATION}s per run)"
"$PY" "$SELF/bench/pipelines/run.py" --kind x=0 --work "$WORK" --report "${reports[@]}"
