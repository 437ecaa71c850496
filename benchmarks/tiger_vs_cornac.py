"""TIGER's model on the CPU: indexbench's engine beside cornac 3.0.1's `TIGER` -- training steps
a second and test users a second, same model size, same beam, same machine, one after the other
(issue #30, point 5).

Both sides get the same synthetic problem of TIGER's shape on Beauty: ``--items`` items (12,101)
with random semantic IDs of 3 codes of 256 plus the collision code (`decoding.random_ids`), and
histories of 20 random items given as their ID tokens. Speed does not depend on which IDs or
weights these are.

* Model: TIGER's T5, 4 + 4 layers, d_model 128, 6 heads of 64, feed-forward 1,024, dropout 0.1
  -- indexbench's backbone ``t5-tiger``, cornac's `TIGERSeq2Seq` with the same settings (its
  defaults). Each side's parameter count is printed (indexbench's T5 keeps the MiniLM
  vocabulary's rows, which an ID input never reads; they are counted apart).
* Training: batches of 256 (input, next item's ID) pairs, forward, backward and optimiser step.
  indexbench runs its own loop (`training.train_id_generation` under ``preset=tiger``:
  Adafactor); cornac's fit loop body (its model's loss, `torch.optim.AdamW`, as its `fit`
  does). Seconds a step are the time of ``--steps`` steps after ``--warmup`` untimed ones
  (indexbench: the difference of two runs, ``warmup`` and ``warmup + steps`` steps).
* Test users: each side's constrained beam search with 20 beams. cornac's `score` decodes one
  user at a time (`TIGERSeq2Seq.generate_beam` over its prefix table, which `score` calls);
  indexbench decodes in batches (`decoding.search_batched`, batch 64), and at batch 1 too, so
  the search itself is compared at equal batch.

    pip install cornac==3.0.1      # a benchmark-only dependency; the package never imports it
    python benchmarks/tiger_vs_cornac.py [--items 12101] [--steps 10] [--warmup 2] [--users 256]

Run it on an otherwise idle machine. Prints a Markdown table and writes
benchmarks/out/tiger_vs_cornac.json. Nothing is written to the user's store or cache.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from decoding import id_histories, random_ids  # noqa: E402

SIZES = (256, 256, 256)
"""TIGER's three codes of 256; the collision code's range comes from the IDs."""
BATCH = 256
BEAMS = 20


def tiger_ids(n_items: int):
    """Random IDs of TIGER's shape: three codes of 256 and the code numbering collisions."""
    codes = random_ids(n_items, (*SIZES, 1))
    return codes, (*SIZES, int(codes[:, -1].max()) + 1)


def ours(codes, sizes, n_train: int, users: int, steps: int, warmup: int) -> dict:
    import torch

    from indexbench.generative.backbones import load_backbone
    from indexbench.generative.decoding import search_batched
    from indexbench.generative.id_tokens import IdTrie
    from indexbench.generative.options import GenerativeOptions
    from indexbench.generative.training import train_id_generation
    from indexbench.protocols import RunContext

    def fresh():
        torch.manual_seed(0)
        backbone = load_backbone("t5-tiger")
        backbone.add_id_tokens(sizes)
        return backbone

    backbone = fresh()
    inputs = id_histories(backbone, codes, sizes, n_train)
    targets = [tuple(int(c) for c in codes[j]) for j in np.random.default_rng(1).integers(0, len(codes), n_train)]
    examples = list(zip(inputs, targets))
    vocab_rows = backbone.model.get_input_embeddings().weight.shape[0] - sum(sizes)
    params = sum(p.numel() for p in backbone.model.parameters())
    unread = vocab_rows * backbone.model.config.d_model

    def train(n: int) -> float:
        options = GenerativeOptions(preset="tiger", max_steps=n)
        options.apply_preset()
        model = fresh()
        started = time.perf_counter()
        train_id_generation(model, examples, options, RunContext(seed=0))
        return time.perf_counter() - started

    step_s = (train(warmup + steps) - train(warmup)) / steps
    trie = IdTrie(codes, sizes)
    tokens = inputs[:users]
    with torch.inference_mode():
        search_batched(backbone, trie, tokens[:64], BEAMS, 64)  # warm-up
        started = time.perf_counter()
        search_batched(backbone, trie, tokens, BEAMS, 64)
        batched = users / (time.perf_counter() - started)
        started = time.perf_counter()
        search_batched(backbone, trie, tokens[: users // 4], BEAMS, 1)
        single = (users // 4) / (time.perf_counter() - started)
    return {"side": "indexbench (t5-tiger, Adafactor)", "params_m": (params - unread) / 1e6,
            "unread_vocab_params_m": unread / 1e6, "step_s": step_s, "steps_per_s": 1 / step_s,
            "users_per_s": batched, "users_per_s_batch1": single}


def cornac(codes, sizes, n_train: int, users: int, steps: int, warmup: int) -> dict:
    import torch
    from cornac.models.tiger import TIGER
    from cornac.models.tiger.tiger import TIGERSeq2Seq

    # cornac's own semantic-ID table and prefix table, from the same three codes.
    shell = TIGER(rqvae_num_levels=3, rqvae_codebook_size=256, verbose=False)
    shell._build_semantic_ids(codes[:, :3])
    if tuple(shell.level_sizes) != tuple(sizes) or not np.array_equal(shell.sid_table, codes):
        raise SystemExit("cornac numbered the colliding items differently from these IDs")
    torch.manual_seed(0)
    model = TIGERSeq2Seq(level_sizes=shell.level_sizes)  # its defaults: TIGER's 4 + 4, 128, 6 x 64, 1,024
    offsets = model.offsets.numpy()
    table = np.zeros((len(codes) + 1, len(sizes)), dtype=np.int64)
    table[: len(codes)] = codes + offsets
    rng = np.random.default_rng(0)
    histories = rng.integers(0, len(codes), size=(n_train, 20))
    item_targets = rng.integers(0, len(codes), size=n_train)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)  # its fit's defaults

    def step(lo: int) -> None:
        rows = slice(lo % (n_train - BATCH), lo % (n_train - BATCH) + BATCH)
        enc = torch.tensor(table[histories[rows]].reshape(BATCH, -1))
        target = torch.tensor(codes[item_targets[rows]])
        optimiser.zero_grad()
        model(enc, (enc != 0).float(), target).backward()
        optimiser.step()

    model.train()
    for i in range(warmup):
        step(i * BATCH)
    started = time.perf_counter()
    for i in range(steps):
        step((warmup + i) * BATCH)
    step_s = (time.perf_counter() - started) / steps
    model.eval()

    def decode(n: int) -> float:
        started = time.perf_counter()
        for row in histories[:n]:
            enc = torch.tensor(table[row].reshape(1, -1))
            model.generate_beam(enc, (enc != 0).float(), BEAMS, shell.prefix_children)
        return n / (time.perf_counter() - started)

    decode(4)  # warm-up
    return {"side": "cornac 3.0.1 TIGER (TIGERSeq2Seq, AdamW)", "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
            "unread_vocab_params_m": 0.0, "step_s": step_s, "steps_per_s": 1 / step_s,
            "users_per_s": decode(users), "users_per_s_batch1": None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=12101, help="Beauty's item count")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per side")
    parser.add_argument("--warmup", type=int, default=2, help="untimed training steps first")
    parser.add_argument("--users", type=int, default=256, help="test users decoded per side")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "tiger_vs_cornac.json")
    args = parser.parse_args()
    import torch

    from indexbench.environment import package_versions

    codes, sizes = tiger_ids(args.items)
    n_train = BATCH * (args.warmup + args.steps + 1)
    rows = [ours(codes, sizes, n_train, args.users, args.steps, args.warmup),
            cornac(codes, sizes, n_train, args.users, args.steps, args.warmup)]
    machine = f"{platform.processor() or platform.machine()}, {package_versions().get('cpu', '')}, " \
              f"{torch.get_num_threads()} threads"
    print(f"Machine: {machine}; {args.items:,} items, IDs {'x'.join(map(str, sizes))}, batch {BATCH}, "
          f"beam {BEAMS}\n")
    print("| side | parameters (M) | s / training step | steps / s | test users / s | users / s, batch 1 |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        single = "--" if r["users_per_s_batch1"] is None else f"{r['users_per_s_batch1']:.1f}"
        print(f"| {r['side']} | {r['params_m']:.2f} (+{r['unread_vocab_params_m']:.2f} unread) | "
              f"{r['step_s']:.2f} | {r['steps_per_s']:.3f} | {r['users_per_s']:.1f} | {single} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine, "items": args.items, "sizes": list(sizes),
                                    "batch": BATCH, "beams": BEAMS, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
