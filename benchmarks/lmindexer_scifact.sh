#!/usr/bin/env bash
# The controlled run of issue #29's SciFact question: lmindexer 0.2.0 scored ndcg@10 0.252 (100
# engine steps, session 10) and 0.3.x 0.199 (200 steps, session 17). 0.2.0 anchored each position
# to its k-means codes and had no encoder warm-up; 0.3.x follows the paper (warm-ups, no anchor).
# Both objectives at the same code, seed and budget, one after the other on one idle machine:
#   bash benchmarks/lmindexer_scifact.sh [DATA_DIR] [DEVICE]     (defaults: ../shared/data, cpu)
# About 80 minutes a LMIndexer row on the 2-core CPU (ID learning dominates), 10-15 minutes for
# hc and rqvae at the same engine budget, the two-stage rows beside them (ROWS=lmindexer leaves
# them out; ROWS="hc rqvae" runs only those). On a GPU at the same budget:
#   MAX_STEPS=200 bash benchmarks/lmindexer_scifact.sh DATA cuda
# The records keep each indexer's ID statistics (collision rate, distinct prefixes).
# `code_anchor=1:encoder_warmup=false` is refused: without the warm-up phase there are no
# k-means codebooks, so the anchor has no target; encoder_warmup_steps=-1 drops only the steps.
source "$(dirname "$0")/common.sh" "$@"
# One command a row, so each is timed and stored on its own; LMIndexer's ID learning writes a
# checkpoint after every phase, so a row cut short resumes where it stopped when run again.
ROWS=${ROWS:-paper anchored hc rqvae}  # any of them, in this order; ROWS=lmindexer = the first two
[ "$ROWS" = lmindexer ] && ROWS="paper anchored"
row() {  # row NAME SPEC
    case " $ROWS " in *" $1 "*) ;; *) return 0 ;; esac
    timed "lm-scifact-$1" indexbench run -i "$2" -t document-retrieval -d scifact \
        --data-dir "$DATA" --device "$DEVICE" --json "$OUT/lm-scifact-$1.json"
}
row paper "lmindexer$STEPS"
row anchored "lmindexer$STEPS:code_anchor=1:encoder_warmup_steps=-1"
row hc "hc$STEPS"
row rqvae "rqvae$STEPS"
indexbench leaderboard -d scifact --format markdown > "$OUT/lm-scifact-control.md"
for f in "$OUT"/lm-scifact-*.seconds; do echo "$(basename "$f" .seconds): $(cat "$f") s"; done
