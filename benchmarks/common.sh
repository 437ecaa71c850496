# Sourced by the benchmark scripts: arguments, output folder, store/cache locations, the CPU step
# cap of generative cells, and `timed`.
#   usage in a script: source "$(dirname "$0")/common.sh" "$@"
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DATA=${1:-../shared/data}
DEVICE=${2:-cpu}
OUT=benchmarks/out/$DEVICE
mkdir -p "$OUT"
export INDEXBENCH_RESULTS=$OUT/results.sqlite INDEXBENCH_CACHE=$OUT/cache
# On the 2-core CPU the generative engine is capped at MAX_STEPS optimiser steps per cell (so the
# amazon grid fits in about 90 minutes); on a GPU the engine's default (500) applies unless
# MAX_STEPS is set (to repeat a CPU-budget figure on the GPU).
if [ "$DEVICE" = cpu ] || [ -n "${MAX_STEPS:-}" ]; then STEPS=":max_steps=${MAX_STEPS:-200}"; else STEPS=""; fi

timed() {  # timed NAME CMD...: run, record wall seconds in $OUT/NAME.seconds
    local name=$1; shift
    local start=$SECONDS
    "$@"
    echo $((SECONDS - start)) > "$OUT/$name.seconds"
}
