#!/usr/bin/env bash
# Issue #30's grid: which tokenizer gives the best generative recommender under TIGER's protocol
# (the history as semantic IDs, `preset=tiger`: T5 from scratch, T = 4, user tokens), on Amazon
# Beauty with the category path in the item text, at one CPU budget for every tokenizer.
#   bash benchmarks/ids_input.sh [DATA_DIR] [DEVICE]     (defaults: ../shared/data, cpu)
# MAX_STEPS (default 700 on the CPU: about 2.5 s a step of batch 256 on Beauty's prefixes on 2
# cores, so a cell is 26-30 minutes of training and 5-7 of decoding; 700 is the step count of the
# figures in benchmarks/README) caps each cell's engine steps; ROWS picks cells (default
# "most-popular sasrec hc rqvae rqkmeans random-ids": the two ID baselines on the same dataset
# label, so they share the leaderboard). One command a cell, each timed into
# benchmarks/out/DEVICE/ids-<row>.seconds; the records hold the dev curve (recall@10 and NDCG@10
# of the first 1,000 dev users every 100 steps on the CPU; on a GPU after each epoch of 512
# steps, at most ten times), the invalid-ID rates and the collision policy.
# On a GPU run it without MAX_STEPS for the paper's 200k steps (several hours on one H200).
source "$(dirname "$0")/common.sh" "$@"
if [ "$DEVICE" = cpu ]; then CAP=":max_steps=${MAX_STEPS:-700}:dev_every=100:dev_queries=1000"; else CAP="${MAX_STEPS:+:max_steps=$MAX_STEPS}"; fi
ROWS=${ROWS:-most-popular sasrec hc rqvae rqkmeans random-ids}
for row in $ROWS; do
    case $row in most-popular|sasrec) spec=$row ;; *) spec="$row:preset=tiger$CAP" ;; esac
    timed "ids-$row" indexbench run -i "$spec" -t recommendation \
        -d amazon-beauty:category_text=true --data-dir "$DATA" --device "$DEVICE" --json "$OUT/ids-$row.json"
done
indexbench leaderboard -d amazon-beauty:category_text=true --format markdown > "$OUT/ids-leaderboard.md"
for f in "$OUT"/ids-*.seconds; do echo "$(basename "$f" .seconds): $(cat "$f") s"; done
