#!/usr/bin/env bash
# bench/before_after.sh BEFORE_CHECKOUT [SCENARIOS] — one run of the shared anchors scenarios
# against the real Triton 2.51, then tritond from BEFORE_CHECKOUT (e.g. a `git worktree` of the
# commit before a change, with its own .venv), then tritond from this checkout; prints both
# tritond/Triton ratio tables. Same machine, same run, one server at a time: the fair way to
# say whether a change moved the ratios on a shared, noisy host. DURATION/WARMUP pass through.
set -euo pipefail
SELF=$(cd "$(dirname "$0")/.." && pwd)
BEFORE=$(cd "${1:?usage: bench/before_after.sh BEFORE_CHECKOUT [SCENARIOS]}" && pwd)
export SCENARIOS=${2:-${SCENARIOS:-abce}}
export TRITOND_EXTRA_ARGS=${TRITOND_EXTRA_ARGS:---allow-client-shm=true --http-max-input-size=1073741824}
WORK=${ANCHORS_SCRATCH:-/tmp/tritond-anchors}
# vs_triton.sh prepares the scratch copy (and repairs the flattened symlink) and measures
# Triton and this checkout; the earlier checkout runs right after, in the same scratch copy.
out=$("$SELF/bench/vs_triton.sh" "$SCENARIOS")
echo "$out"
before_jsonl=$(ls "$WORK"/results/tritond-*.jsonl | sort | tail -1)
t=$(ls "$WORK"/results/triton-*.jsonl | sort | tail -1)
(cd "$WORK" && TRITOND_CHECKOUT=$BEFORE ./run_all.sh tritond >/dev/null)
b=$(ls "$WORK"/results/tritond-*.jsonl | sort | tail -1)
echo
echo "## before ($(git -C "$BEFORE" rev-parse --short HEAD)) vs Triton, same run"
python3 "$SELF/bench/compare.py" "$t" "$b"
echo
echo "raw: triton $t; after $before_jsonl; before $b"
