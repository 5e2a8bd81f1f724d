#!/usr/bin/env bash
# bench/vs_triton.sh [SCENARIOS] — run the shared anchors scenarios against the real
# Triton 2.51 and tritond in one run, then print the tritond/Triton ratio table.
#   SCENARIOS: subset of abcde (default abc); DURATION/WARMUP/LARGE_BUDGET pass through.
# Needs ../shared/anchors (its setup.sh installs Triton, wrk and h2load) and this
# checkout's .venv (README test command).
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
ANCHORS=${ANCHORS:-$HERE/../shared/anchors}
export SCENARIOS=${1:-${SCENARIOS:-abc}}
export TRITOND_CHECKOUT=$HERE
"$ANCHORS/setup.sh" >&2
before=$(ls "$ANCHORS"/results/*.jsonl 2>/dev/null | sort || true)
(cd "$ANCHORS" && ./run_all.sh triton tritond)
after=$(ls "$ANCHORS"/results/*.jsonl | sort)
new=$(comm -13 <(echo "$before") <(echo "$after"))
t=$(echo "$new" | grep '/triton-' | tail -1)
d=$(echo "$new" | grep '/tritond-' | tail -1)
echo
echo "## tritond vs Triton ($(date -u '+%Y-%m-%d %H:%M UTC'), SCENARIOS=$SCENARIOS)"
"$HERE/.venv/bin/python" "$HERE/bench/compare.py" "$t" "$d"
