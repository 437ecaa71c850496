#!/usr/bin/env bash
# The measured table of benchmarks/LOG.md: BM25 and the dual encoder (zero-shot and fine-tuned)
# on SciFact and amazon-scientific, each grid run twice to show what the artifact cache saves.
#   bash benchmarks/baselines.sh [DATA_DIR]        (default ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data}
OUT=benchmarks/out
mkdir -p "$OUT"
export INDEXBENCH_RESULTS=$OUT/results.sqlite INDEXBENCH_CACHE=$OUT/cache
rm -rf "$OUT/cache" "$INDEXBENCH_RESULTS"

timed() {  # timed NAME CMD...: run, record wall seconds in $OUT/NAME.seconds
    local name=$1; shift
    local start=$SECONDS
    "$@"
    echo $((SECONDS - start)) > "$OUT/$name.seconds"
}

INDEXERS=bm25,dual-encoder,dual-encoder:finetune=true
timed scifact-cold indexbench run -i $INDEXERS -t document-retrieval -d scifact --data-dir "$DATA" \
    --json "$OUT/scifact.json" -q
timed scifact-warm indexbench run -i $INDEXERS -t document-retrieval -d scifact --data-dir "$DATA" -q
timed amazon-cold indexbench run -i $INDEXERS -t product-search,recommendation,id-quality \
    -d amazon-scientific --data-dir "$DATA" --json "$OUT/amazon.json" -q
timed amazon-warm indexbench run -i $INDEXERS -t product-search,recommendation,id-quality \
    -d amazon-scientific --data-dir "$DATA" -q
indexbench leaderboard --format markdown > "$OUT/leaderboard.md"
for f in "$OUT"/*.seconds; do echo "$(basename "$f" .seconds): $(cat "$f") s"; done
