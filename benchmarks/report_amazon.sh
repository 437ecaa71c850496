#!/usr/bin/env bash
# The report of a small amazon-scientific grid and its screenshots (issue #31):
#   bash benchmarks/report_amazon.sh [DATA_DIR] [DEVICE]     (defaults: ../shared/data, cpu)
# Runs, into its own store (benchmarks/out/DEVICE/report-amazon.sqlite), three seeds of
#   * id-quality for hc, rqvae and random-ids (code usage, Fig. 3's category table),
#   * product-search and recommendation for bm25, dual-encoder, most-popular and sasrec
#     (leaderboards with spread and significance marks, per-query differences, latencies,
#     sasrec's dev curve; most-popular on product-search shows a skipped cell),
#   * one generative cell (hc on product-search, MAX_STEPS engine steps, seed 0: the engine's
#     training curve),
# then writes the report to benchmarks/out/DEVICE/report-amazon/ and screenshots of its index
# and of one leaderboard page to benchmarks/report-*.png (committed; the README shows them).
source "$(dirname "$0")/common.sh" "$@"
export INDEXBENCH_RESULTS=$OUT/report-amazon.sqlite
D=(-d amazon-scientific --data-dir "$DATA" --device "$DEVICE" --resume)

timed report-amazon-ids indexbench run -q -i hc,rqvae,random-ids -t id-quality --seeds 0,1,2 "${D[@]}"
timed report-amazon-ranking indexbench run -q -i bm25,dual-encoder,most-popular,sasrec \
    -t product-search,recommendation --seeds 0,1,2 "${D[@]}"
timed report-amazon-generative indexbench run -q -i "hc$STEPS" -t product-search "${D[@]}"
timed report-amazon-render indexbench report --store "$INDEXBENCH_RESULTS" --out "$OUT/report-amazon" -q
python benchmarks/report_screenshot.py "$OUT/report-amazon" benchmarks
for f in "$OUT"/report-amazon-*.seconds; do echo "$(basename "$f" .seconds): $(cat "$f") s"; done
