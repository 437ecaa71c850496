"""SASRec on Amazon Beauty (the P5/TIGER split): indexbench's `sasrec` beside cornac 3.0.1's
`SASRec` on the same sequences, the same protocol and the same CPU, one after the other.

Both use leave-last-out (last item test, second-to-last dev, the rest train), rank every item
without removing seen ones, and select the epoch by dev NDCG@10. cornac runs its tuned Beauty
setting (its TIGER README: binary loss over 2,048 shared popularity-sampled negatives, 128
dimensions, lr 5e-4, dropout 0.2, history 50); indexbench runs its defaults. Each framework scores
its own rankings (R@5, N@5, R@10, N@10; one relevant item, so the definitions agree).

One change to cornac, without which its epoch selection does nothing on this split: its dev
evaluation gives NaN whenever a dev target never occurs in training, so no epoch ever scores
"better" and the last one is kept; here such a target counts as a miss (`logged_dev_scores`).
A cornac epoch ranks every training prefix as its own sequence and takes minutes on 2 cores,
and its dev evaluation ranks one user at a time (minutes too), hence `--cornac-val-every`.

    pip install cornac==3.0.1      # a benchmark-only dependency; the package never imports it
    python benchmarks/sasrec_vs_cornac.py [--data ../shared/data] [--cornac-epochs 12] [--ours SPEC]
                                          [--skip-ours | --skip-cornac]

Writes a Markdown table and each side's dev NDCG@10 by training time to stdout. indexbench's run uses a private store and cache under a
temporary directory (nothing is written to the user's).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def beauty(data: Path):
    from indexbench.datasets import load_dataset
    from indexbench.registry import get_registry

    return load_dataset(get_registry().dataset("amazon-beauty"), data)


def run_ours(data: Path, spec: str) -> dict:
    from indexbench.runner import run_grid

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        (record,) = run_grid([spec], ["recommendation"], ["amazon-beauty"], data_dir=data, store=False,
                             cache_dir=Path(tmp) / "cache", device="cpu")
        wall = time.perf_counter() - started
    if record.status != "ok":
        raise SystemExit(f"{spec}: {record.status}: {record.reason}")
    training = record.details["indexer"]["training"]
    curve = [(p["epoch"], p["dev_ndcg@10"], p["seconds"]) for p in record.details["indexer"]["dev_curve"]
             if "dev_ndcg@10" in p]
    return {"name": f"indexbench {spec}", **record.metrics, "train_s": training["train_seconds"],
            "wall_s": wall, "epochs": f"{training['best_epoch']} of {training['epochs_run']}", "curve": curve}


def logged_dev_scores(curve: list[dict], started: list[float]):
    """Replace cornac's dev evaluation (NDCG@10 of each user's dev target) with one that counts
    a dev target unknown to the training set as a miss, and keep each score with the training
    time before it (the evaluation's own time not counted).

    cornac's `val_score` excludes unknown items, so such a user's NDCG is 0/0 = NaN, the mean is
    NaN, no epoch is ever "better", and `model_selection="best"` silently keeps the last epoch.
    On Beauty a few dev targets occur nowhere in the training parts."""
    import cornac.models.sasrec.recom_sasrec as recom
    import numpy as np
    from cornac.eval_methods.next_item_evaluation import ranking_eval
    from cornac.metrics import NDCG

    def dev_ndcg(model, train_set, val_set, metric="ndcg", k=10):
        before = time.perf_counter()
        _, per_user = ranking_eval(model=model, metrics=[NDCG(k=k)], train_set=train_set, test_set=val_set,
                                   user_based=True, exclude_unknowns=True, verbose=False)
        scores = np.array([s for values in per_user[0].values() for s in values], dtype=float)
        score = float(np.nan_to_num(scores, nan=0.0).mean())
        after = time.perf_counter()
        curve.append({"dev_ndcg@10": score, "train_s": before - started[0] - sum(p["eval_s"] for p in curve),
                      "eval_s": after - before, "unknown": int(np.isnan(scores).sum())})
        print(f"cornac dev ndcg@10 {score:.4f} after {curve[-1]['train_s']:.0f} s of training "
              f"({curve[-1]['unknown']} of {len(scores)} dev targets unknown to training: counted as misses; "
              f"evaluation {curve[-1]['eval_s']:.0f} s)", flush=True)
        return score

    recom.val_score = dev_ndcg


def run_cornac(data: Path, epochs: int, seed: int, val_every: int) -> dict:
    from cornac.eval_methods import NextItemEvaluation
    from cornac.metrics import NDCG, Recall
    from cornac.models import SASRec

    curve: list[dict] = []
    fit_started = [0.0]
    logged_dev_scores(curve, fit_started)

    dataset = beauty(data)
    feedback = [(user, item, 1.0, t) for user, items in dataset.interactions.items() for t, item in enumerate(items)]
    started = time.perf_counter()
    evaluation = NextItemEvaluation.leave_last_out(feedback, fmt="UIRT", mode="last", exclude_unknowns=False)
    model = SASRec(embedding_dim=128, loss="bce", learning_rate=5e-4, dropout=0.2, max_len=50, n_epochs=epochs,
                   model_selection="best", val_eval_every=val_every, val_metric="ndcg", val_k=10, seed=seed,
                   verbose=True)  # its progress bar: an epoch takes minutes on 2 cores
    fit_started[0] = time.perf_counter()
    model.fit(evaluation.train_set, evaluation.val_set)
    train_s = time.perf_counter() - fit_started[0] - sum(point["eval_s"] for point in curve)
    model.trainable = False
    result, _ = evaluation.evaluate(model, metrics=[Recall(k=5), NDCG(k=5), Recall(k=10), NDCG(k=10)],
                                    user_based=False, show_validation=False)
    avg = result.metric_avg_results
    return {"name": "cornac 3.0.1 SASRec (tuned: bce, 128, lr 5e-4, dropout 0.2, history 50)",
            "recall@5": avg["Recall@5"], "ndcg@5": avg["NDCG@5"], "recall@10": avg["Recall@10"],
            "ndcg@10": avg["NDCG@10"], "train_s": train_s, "wall_s": time.perf_counter() - started,
            "epochs": f"best of {epochs} (dev every {val_every})",
            "curve": [(val_every * (i + 1), p["dev_ndcg@10"], p["train_s"]) for i, p in enumerate(curve)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--cornac-epochs", type=int, default=12)
    parser.add_argument("--cornac-val-every", type=int, default=3,
                        help="epochs between cornac's dev evaluations (it ranks one user at a time)")
    parser.add_argument("--ours", default="sasrec")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-cornac", action="store_true")
    parser.add_argument("--skip-ours", action="store_true")
    args = parser.parse_args()
    rows = [] if args.skip_ours else [run_ours(args.data, args.ours)]
    if not args.skip_cornac:
        rows.append(run_cornac(args.data, args.cornac_epochs, args.seed, args.cornac_val_every))
    from indexbench.environment import package_versions

    print(f"Machine: {platform.processor() or platform.machine()}, {package_versions().get('cpu', '')}, "
          f"torch {package_versions().get('torch', '')}\n")
    print("| implementation | R@5 | N@5 | R@10 | N@10 | epochs | train s | wall s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['name']} | {row['recall@5']:.4f} | {row['ndcg@5']:.4f} | {row['recall@10']:.4f} | "
              f"{row['ndcg@10']:.4f} | {row['epochs']} | {row['train_s']:.0f} | {row['wall_s']:.0f} |")
    print("\nDev NDCG@10 by training time (evaluation time not counted):\n")
    for row in rows:
        points = ", ".join(f"{ndcg:.4f} @{epoch} ({seconds:.0f} s)" for epoch, ndcg, seconds in row["curve"])
        print(f"* {row['name']}: {points}")


if __name__ == "__main__":
    main()
