#!/usr/bin/env bash
# Amazon Beauty, the P5/TIGER split (issue #29): the paper's Table 1 on its own dataset, the
# trivial baseline under it, and every indexer on recommendation and product search.
#   bash benchmarks/beauty.sh [DATA_DIR] [DEVICE]     (defaults: ../shared/data, cpu)
# Steps, each timed into benchmarks/out/DEVICE/beauty-*.seconds; run them on an otherwise idle
# machine (two heavy jobs on 2 cores slow each other far more than 2x):
#   1. id-quality for hc, rqvae, lmindexer, random-ids (item text: title + brand; descriptions
#      are empty in this release), beside the paper's AMI row (`indexbench verify --wide`).
#   2. k-means of the inputs the indexers start from, no training (benchmarks/lmindexer_inputs.py):
#      how much of LMIndexer's gap to the two-stage indexers is its backbone (MiniLM here, BERT
#      or in-domain SimCSE in the paper's baselines).
#   3. recommendation and product-search for every indexer at the CPU budget (generative cells
#      capped at MAX_STEPS engine steps). Measured on a 2-core AMD EPYC: about 15 minutes for the
#      cells without a generative model, 19 for each of hc, rqvae and random-ids, 15 for
#      lmindexer once its IDs are cached (step 1 learns them; 36 minutes otherwise), seal's
#      product search 5 and its recommendation 79 (22,363 histories at 5.5 a second).
# STEP=1|2|3 runs one step only.
source "$(dirname "$0")/common.sh" "$@"
ONLY=${STEP:-all}
D=(-d amazon-beauty --data-dir "$DATA" --device "$DEVICE")

if [ "$ONLY" = all ] || [ "$ONLY" = 1 ]; then
    timed beauty-ids indexbench run -i "hc$STEPS,rqvae$STEPS,lmindexer$STEPS,random-ids$STEPS" -t id-quality \
        "${D[@]}" --json "$OUT/beauty-ids.json"
fi
if [ "$ONLY" = all ] || [ "$ONLY" = 2 ]; then
    timed beauty-inputs python benchmarks/lmindexer_inputs.py "$DATA" amazon-beauty > "$OUT/beauty-inputs.md"
fi
if [ "$ONLY" = all ] || [ "$ONLY" = 3 ]; then
    timed beauty-grid indexbench run \
        -i "most-popular,sasrec,bm25,dual-encoder,hc$STEPS,rqvae$STEPS,lmindexer$STEPS,seal$STEPS" \
        -t recommendation,product-search "${D[@]}" --json "$OUT/beauty-grid.json"
fi
indexbench leaderboard -d amazon-beauty --format markdown > "$OUT/beauty-leaderboard.md"
for f in "$OUT"/beauty-*.seconds; do echo "$(basename "$f" .seconds): $(cat "$f") s"; done
