#!/usr/bin/env bash
# Every GPU figure of benchmarks/LOG.md in one run (issue #17, point 4), for when a GPU machine
# is lent: the decoding benchmark, the encoding benchmark (fp32 against bf16, with SciFact
# ndcg@10), the engine's training step, and the amazon-scientific grid, all with --device cuda.
#   bash benchmarks/gpu.sh [DATA_DIR]        (default ../shared/data)
# Writes benchmarks/out/cuda/: decoding.json, encoding.json, training_step.json, the grid's
# records (ids-amazon.json), its leaderboard (leaderboard.md), wall times (*.seconds) and
# gpu.txt (nvidia-smi, torch and CUDA versions). About 10 minutes on one H200.
source "$(dirname "$0")/common.sh" "${1:-../shared/data}" cuda

python - > "$OUT/gpu.txt" <<'EOF'
import subprocess, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))
print(subprocess.run(["nvidia-smi"], capture_output=True, text=True).stdout)
EOF
timed decoding python benchmarks/decoding.py --data-dir "$DATA" --queries 338 --device cuda \
    --out "$OUT/decoding.json"
timed encoding python benchmarks/encoding.py --data-dir "$DATA" --device cuda --precisions fp32,bf16 \
    --docs 5183 --ndcg
cp benchmarks/out/encoding.json "$OUT/encoding.json"
timed training-step python benchmarks/training_step.py --data-dir "$DATA" --steps 50
cp benchmarks/out/training_step.json "$OUT/training_step.json"
timed ids-amazon indexbench run -q -i hc,rqvae,bm25,dual-encoder -t product-search,recommendation \
    -d amazon-scientific --data-dir "$DATA" --device cuda --json "$OUT/ids-amazon.json"
indexbench leaderboard --format markdown > "$OUT/leaderboard.md"
for f in "$OUT"/*.seconds; do echo "$(basename "$f" .seconds): $(cat "$f") s"; done

# Issue #30's GPU part, hours at the paper's budget, so only on request: TIGER=1 bash benchmarks/gpu.sh
# -- the `tiger` preset (rq-VAE IDs, T5 from scratch, 200k steps unless TIGER_STEPS caps them) and
# `tiger-tuned` on Beauty with 3 seeds each; LMIndexer's `schedule=paper` on amazon-scientific and
# Beauty; the ID indexers with `input=ids` (benchmarks/ids_input.sh at the same step count). Paper:
# R@5 .0441 +- .0007, N@5 .0309 +- .0006, R@10 .0642 +- .0009, N@10 .0374 +- .0006 (3 seeds).
if [ -n "${TIGER:-}" ]; then
    CAP="${TIGER_STEPS:+:max_steps=$TIGER_STEPS}"
    for preset in tiger tiger-tuned; do
        timed "$preset" indexbench run -q -i "rqvae:preset=$preset$CAP" -t recommendation \
            -d amazon-beauty:category_text=true --seeds 0,1,2 --data-dir "$DATA" --device cuda \
            --json "$OUT/$preset.json"
    done
    timed lmindexer-paper indexbench run -q -i lmindexer:schedule=paper -t product-search,recommendation \
        -d amazon-scientific,amazon-beauty --data-dir "$DATA" --device cuda --json "$OUT/lmindexer-paper.json"
    ROWS="hc rqkmeans random-ids" MAX_STEPS="${TIGER_STEPS:-}" bash benchmarks/ids_input.sh "$DATA" cuda
    indexbench leaderboard -d amazon-beauty:category_text=true --format markdown > "$OUT/tiger-leaderboard.md"
fi
