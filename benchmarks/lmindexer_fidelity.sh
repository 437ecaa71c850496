#!/usr/bin/env bash
# Issue #12's measurements: LMIndexer with the fixed reconstructor beside hc, rq-VAE and
# random-ids (id-quality on amazon-scientific at the shared (T, K) = (3, 256)), the category-text
# leakage table, and the reconstructor warm-up study.
#   bash benchmarks/lmindexer_fidelity.sh [DATA_DIR] [DEVICE]     (defaults: ../shared/data, cpu)
# Results go to benchmarks/out/DEVICE/ (same store and artifact cache as the other scripts).
source "$(dirname "$0")/common.sh" "$@"

# The defaults are the paper's schedule (encoder warm-up, no code anchor); the other two LMIndexer
# rows are session 10's departures and the paper's objective without the encoder warm-up.
timed lm12-grid indexbench run -i lmindexer,lmindexer:code_anchor=1:encoder_warmup_steps=-1,lmindexer:encoder_warmup_steps=-1,hc,rqvae,random-ids \
    -t id-quality -d amazon-scientific --data-dir "$DATA" --device "$DEVICE" --json "$OUT/lm12-grid.json"
# The category path in the item text (the authors' texts): it is id-quality's ground truth.
timed lm12-leakage indexbench run -i hc,rqvae,lmindexer,lmindexer:code_anchor=1:encoder_warmup_steps=-1 \
    -t id-quality -d amazon-scientific:category_text=true \
    --data-dir "$DATA" --device "$DEVICE" --json "$OUT/lm12-leakage.json"
python benchmarks/reconstructor_warmup.py "$DATA" 272 > "$OUT/reconstructor-warmup.md"
indexbench leaderboard --task id-quality --format markdown > "$OUT/lm12-leaderboard.md"
for f in "$OUT"/lm12-*.seconds; do echo "$(basename "$f" .seconds): $(cat "$f") s"; done
