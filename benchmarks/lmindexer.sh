#!/usr/bin/env bash
# The measured tables of issue #4: LMIndexer beside the two-stage indexers (hc, rq-VAE), their
# floor (random-ids) and the baselines on amazon-scientific, in one grid at the shared (T, K),
# then the ablations (Table 2 commitment, Fig. 4 warm-ups and contrastive, Table 5 depth).
#   bash benchmarks/lmindexer.sh [DATA_DIR] [DEVICE]     (defaults: ../shared/data, cpu)
# Results go to benchmarks/out/DEVICE/ beside semantic_ids.sh's (same store and artifact cache,
# so cells that script already ran are reused, not retrained). As there, the generative engine
# is capped at MAX_STEPS=200 optimiser steps per cell on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data}
DEVICE=${2:-cpu}
OUT=benchmarks/out/$DEVICE
mkdir -p "$OUT"
export INDEXBENCH_RESULTS=$OUT/results.sqlite INDEXBENCH_CACHE=$OUT/cache
if [ "$DEVICE" = cpu ]; then STEPS=":max_steps=${MAX_STEPS:-200}"; else STEPS=""; fi

timed() {  # timed NAME CMD...: run, record wall seconds in $OUT/NAME.seconds
    local name=$1; shift
    local start=$SECONDS
    "$@"
    echo $((SECONDS - start)) > "$OUT/$name.seconds"
}

timed lm-grid indexbench run -i "lmindexer$STEPS,hc$STEPS,rqvae$STEPS,random-ids$STEPS,bm25,dual-encoder" \
    -t id-quality,product-search,recommendation -d amazon-scientific --data-dir "$DATA" \
    --device "$DEVICE" --json "$OUT/lm-grid.json"
timed lm-ablations indexbench run \
    -i lmindexer:commitment=false,lmindexer:contrastive=false,lmindexer:reconstructor_layers=2,lmindexer:reconstructor_layers=3,lmindexer:reconstructor_warmup=false,lmindexer:encoder_warmup=false \
    -t id-quality -d amazon-scientific --data-dir "$DATA" --device "$DEVICE" --json "$OUT/lm-ablations.json"
indexbench leaderboard --format markdown > "$OUT/leaderboard.md"
for f in "$OUT"/lm-*.seconds; do echo "$(basename "$f" .seconds): $(cat "$f") s"; done
