#!/usr/bin/env bash
# The measured tables of issue #3: two-stage semantic IDs (hc, rq-VAE) and their floor
# (random-ids) beside the baselines, on amazon-scientific and SciFact, plus the decoding benchmark.
#   bash benchmarks/semantic_ids.sh [DATA_DIR]        (default ../shared/data)
# Reuses benchmarks/out/cache (so the baselines' embeddings are not recomputed) and appends to
# benchmarks/out/results.sqlite. Every indexer runs at the shared default (T, K) for the corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data}
OUT=benchmarks/out
mkdir -p "$OUT"
export INDEXBENCH_RESULTS=$OUT/results.sqlite INDEXBENCH_CACHE=$OUT/cache

timed() {  # timed NAME CMD...: run, record wall seconds in $OUT/NAME.seconds
    local name=$1; shift
    local start=$SECONDS
    "$@"
    echo $((SECONDS - start)) > "$OUT/$name.seconds"
}

timed ids-amazon indexbench run -i hc,rqvae,random-ids,bm25,dual-encoder \
    -t id-quality,product-search,recommendation -d amazon-scientific --data-dir "$DATA" \
    --json "$OUT/ids-amazon.json" -q
timed ids-simcse indexbench run -i hc:encoder=simcse,rqvae:encoder=simcse -t id-quality \
    -d amazon-scientific --data-dir "$DATA" --json "$OUT/ids-simcse.json" -q
timed ids-scifact indexbench run -i hc,rqvae -t document-retrieval -d scifact --data-dir "$DATA" \
    --json "$OUT/ids-scifact.json" -q
python benchmarks/decoding.py --data-dir "$DATA" --queries 338
indexbench leaderboard --format markdown > "$OUT/leaderboard.md"
for f in "$OUT"/ids-*.seconds; do echo "$(basename "$f" .seconds): $(cat "$f") s"; done
