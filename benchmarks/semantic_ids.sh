#!/usr/bin/env bash
# The measured tables of issue #3: two-stage semantic IDs (hc, rq-VAE) and their floor
# (random-ids) beside the baselines, on amazon-scientific and SciFact, plus the decoding benchmark.
#   bash benchmarks/semantic_ids.sh [DATA_DIR] [DEVICE]     (defaults: ../shared/data, cpu)
# Results go to benchmarks/out/DEVICE/ (SQLite store, JSON records, artifact cache, wall times).
# Every indexer runs at the shared default (T, K) for the corpus. On the 2-core CPU the
# generative engine is capped at 200 optimiser steps per cell (MAX_STEPS) so the amazon grid
# fits in about 90 minutes; on a GPU the engine's default (500) applies.
source "$(dirname "$0")/common.sh" "$@"

timed ids-amazon indexbench run -i "hc$STEPS,rqvae$STEPS,random-ids$STEPS,bm25,dual-encoder" \
    -t id-quality,product-search,recommendation -d amazon-scientific --data-dir "$DATA" \
    --device "$DEVICE" --json "$OUT/ids-amazon.json"
timed ids-simcse indexbench run -i hc:encoder=simcse,rqvae:encoder=simcse -t id-quality \
    -d amazon-scientific --data-dir "$DATA" --device "$DEVICE" --json "$OUT/ids-simcse.json"
timed ids-scifact indexbench run -i "hc$STEPS,rqvae$STEPS" -t document-retrieval -d scifact \
    --data-dir "$DATA" --device "$DEVICE" --json "$OUT/ids-scifact.json"
python benchmarks/decoding.py --data-dir "$DATA" --queries 338 --device "$DEVICE" \
    --out "$OUT/decoding.json"
indexbench leaderboard --format markdown > "$OUT/leaderboard.md"
for f in "$OUT"/ids-*.seconds; do echo "$(basename "$f" .seconds): $(cat "$f") s"; done
