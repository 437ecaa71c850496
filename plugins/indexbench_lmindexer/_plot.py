"""The training-curve figure stored with every LMIndexer run: the reconstruction loss beside the
unigram baseline on the same tokens (dashed), and paper Fig. 4's three measures --
reconstruction macro-F1, perplexity of the current position's codes and its diff ratio --
against the global training step, one colour a phase."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PANELS = (("reconstruction_loss", "reconstruction loss, nats (dashed: unigram)"),
          ("macro_f1", "reconstruction macro-F1"), ("perplexity", "ID perplexity (current position)"),
          ("diff_ratio", "diff ratio (current position)"))


def plot_curves(curves: list[dict[str, Any]], path: Path, title: str = "lmindexer") -> Path | None:
    """Write the figure to ``path`` (PNG); None, and no file, when there is nothing to plot."""
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")  # no display needed; must precede pyplot
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.5 * len(PANELS), 3.6))
    phases = list(dict.fromkeys(c["phase"] for c in curves))
    colours = {phase: f"C{i % 10}" for i, phase in enumerate(phases)}  # one colour a phase, every panel
    for ax, (metric, label) in zip(axes, PANELS):
        for phase in phases:
            points = [(c["global_step"], c[metric]) for c in curves if c["phase"] == phase and metric in c]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, marker=".", color=colours[phase], label=phase)
            if metric == "reconstruction_loss":
                baseline = [(c["global_step"], c["unigram_loss"]) for c in curves
                            if c["phase"] == phase and "unigram_loss" in c]
                if baseline:
                    xs, ys = zip(*baseline)
                    ax.plot(xs, ys, linestyle="--", color=colours[phase], alpha=0.6)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path
