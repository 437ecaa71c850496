"""Is LMIndexer's training repeatable? Hash its whole state (backbone and reconstructor weights,
the codes so far) after every phase of one run; run it in two processes and compare.

    python benchmarks/lmindexer_repeatability.py run /tmp/a.json
    python benchmarks/lmindexer_repeatability.py run /tmp/b.json
    python benchmarks/lmindexer_repeatability.py compare /tmp/a.json /tmp/b.json

The run is id-quality on the built-in sample data (about 5 minutes on 2 CPU cores) unless
``--spec`` / ``--dataset`` say otherwise; the artifact cache is a fresh temporary directory, so
nothing is reused. The first phase whose hashes differ is where the runs part (session 13 found
encoder-warmup@1 that way: benchmarks/LOG.md, "train@1 was not repeatable").
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
from pathlib import Path

SPEC = "lmindexer:reconstructor_warmup_steps=30:encoder_warmup_steps=10:position_steps=15"


def _digest(state: dict) -> str:
    h = hashlib.sha256()
    for _, value in sorted(state.items()):
        h.update(value.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def run(out: Path, spec: str, dataset: str, data_dir: Path) -> None:
    import numpy as np
    from indexbench_lmindexer import _algorithm

    from indexbench.runner import run_grid

    phases = []
    checkpoint = _algorithm.SelfSupervisedTraining._checkpoint

    def hashed_checkpoint(self):  # called once after every phase
        codes = hashlib.sha256(np.ascontiguousarray(self.state.codes).tobytes()).hexdigest()[:16]
        phases.append({"phase": self.state.phases[-1]["phase"], "backbone": _digest(self.backbone.state_dict()),
                       "reconstructor": _digest(self.reconstructor.state_dict()), "codes": codes})
        return checkpoint(self)

    _algorithm.SelfSupervisedTraining._checkpoint = hashed_checkpoint
    record = run_grid([spec], ["id-quality"], [dataset], cache_dir=tempfile.mkdtemp(), store=False,
                      device="cpu", data_dir=data_dir)[0]
    out.write_text(json.dumps({"spec": spec, "phases": phases, "status": record.status,
                               "metrics": record.metrics}, indent=1))


def compare(a: Path, b: Path) -> None:
    first, second = json.loads(a.read_text()), json.loads(b.read_text())
    for x, y in zip(first["phases"], second["phases"]):
        same = {k: x[k] == y[k] for k in ("backbone", "reconstructor", "codes")}
        print(f"{x['phase']:<22} " + "  ".join(f"{k} {'same' if v else 'DIFFERENT'}" for k, v in same.items()))
    print("metrics", "same" if first["metrics"] == second["metrics"] else "DIFFERENT")


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("run")
    one.add_argument("out", type=Path)
    one.add_argument("--spec", default=SPEC)
    one.add_argument("--dataset", default="sample")
    one.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    both = sub.add_parser("compare")
    both.add_argument("a", type=Path)
    both.add_argument("b", type=Path)
    args = parser.parse_args()
    if args.command == "run":
        run(args.out, args.spec, args.dataset, args.data_dir)
    else:
        compare(args.a, args.b)


if __name__ == "__main__":
    main()
