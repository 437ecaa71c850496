#!/usr/bin/env bash
# The measured tables of issue #4: LMIndexer beside the two-stage indexers (hc, rq-VAE), their
# floor (random-ids) and the baselines on amazon-scientific, in one grid at the shared (T, K),
# then the ablations (Table 2 commitment, Fig. 4 warm-ups and contrastive, Table 5 depth).
#   bash benchmarks/lmindexer.sh [DATA_DIR] [DEVICE]     (defaults: ../shared/data, cpu)
# Results go to benchmarks/out/DEVICE/ beside semantic_ids.sh's (same store and artifact cache,
# so cells that script already ran are reused, not retrained). As there, the generative engine
# is capped at MAX_STEPS=200 optimiser steps per cell on the CPU.
source "$(dirname "$0")/common.sh" "$@"

timed lm-grid indexbench run -i "lmindexer$STEPS,hc$STEPS,rqvae$STEPS,random-ids$STEPS,bm25,dual-encoder" \
    -t id-quality,product-search,recommendation -d amazon-scientific --data-dir "$DATA" \
    --device "$DEVICE" --json "$OUT/lm-grid.json"
timed lm-ablations indexbench run \
    -i lmindexer:commitment=false,lmindexer:contrastive=false,lmindexer:reconstructor_layers=2,lmindexer:reconstructor_layers=3,lmindexer:reconstructor_warmup=false,lmindexer:encoder_warmup=false \
    -t id-quality -d amazon-scientific --data-dir "$DATA" --device "$DEVICE" --json "$OUT/lm-ablations.json"
indexbench leaderboard --format markdown > "$OUT/leaderboard.md"
for f in "$OUT"/lm-*.seconds; do echo "$(basename "$f" .seconds): $(cat "$f") s"; done
