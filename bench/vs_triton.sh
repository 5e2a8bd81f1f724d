#!/usr/bin/env bash
# bench/vs_triton.sh [SCENARIOS] — run the shared anchors scenarios against the real
# Triton 2.51 and tritond in one run, then print the tritond/Triton ratio table.
#   SCENARIOS: subset of abcde (default abc); DURATION/WARMUP/LARGE_BUDGET pass through.
#   TRITOND_CHECKOUT: the checkout whose .venv/bin/tritond is measured (default: this one).
# The anchors folder is copied to a scratch dir first: the shared copy is read-only
# and its mlp_unbatched/1/model.py arrives as a text file holding the path of
# mlp_batched's model.py (a symlink flattened in transit), which neither server can load.
set -euo pipefail
SELF=$(cd "$(dirname "$0")/.." && pwd)
export TRITOND_CHECKOUT=${TRITOND_CHECKOUT:-$SELF}
# Same defaults as the Triton 2.51 it is compared with: client shm allowed (tritond follows
# Triton 2.68+ and refuses it by default) and binary tensors of 64 MiB accepted over HTTP.
export TRITOND_EXTRA_ARGS=${TRITOND_EXTRA_ARGS:---allow-client-shm=true --http-max-input-size=1073741824}
SRC=${ANCHORS:-$SELF/../shared/anchors}
export SCENARIOS=${1:-${SCENARIOS:-abc}}
WORK=${ANCHORS_SCRATCH:-/tmp/tritond-anchors}
mkdir -p "$WORK"
cp -r "$SRC/." "$WORK/"
chmod -R u+w "$WORK"
for f in "$WORK"/models/triton/*/1/model.py; do
  if [[ $(wc -c <"$f") -lt 200 ]] && head -c 3 "$f" | grep -q '^\.\./'; then
    target=$(cd "$(dirname "$f")" && realpath -m "$(cat "$f")")
    cp "$target" "$f"
  fi
done
"$WORK/setup.sh" >&2
before=$(ls "$WORK"/results/*.jsonl 2>/dev/null | sort || true)
(cd "$WORK" && ./run_all.sh triton tritond)
after=$(ls "$WORK"/results/*.jsonl | sort)
new=$(comm -13 <(echo "$before") <(echo "$after"))
t=$(echo "$new" | grep '/triton-' | tail -1)
d=$(echo "$new" | grep '/tritond-' | tail -1)
echo
echo "## tritond vs Triton ($(date -u '+%Y-%m-%d %H:%M UTC'), SCENARIOS=$SCENARIOS)"
python3 "$SELF/bench/compare.py" "$t" "$d"
