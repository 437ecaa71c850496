"""Where an emulated CPU's arithmetic is not that CPU's (issue #27, the qemu-* gate variants).

QEMU's user-mode emulator lets every library pick its kernels as it would on another CPU, but
it computes some instructions otherwise than silicon: the estimate instructions (rcpps,
rsqrtps) come back exactly rounded where a real CPU returns a 12-bit estimate. A kernel built on
an estimate then gives other bits emulated than on the CPU it imitates. This script shows it in
two layers, natively and under each emulated CPU model:

* the instructions themselves: a tiny C program prints `_mm_rsqrt_ps` and `_mm_rcp_ps` of a few
  values (needs a C compiler; skipped with the reason where there is none);
* torch ops most float paths run through (matrix products, reductions, exp, tanh, softmax, layer
  norm, GELU, sqrt, cdist): a hash of each result, compared with the native one, and how many
  of `torch.sqrt`'s results are not the correctly rounded square root.

    python benchmarks/emulator_fidelity.py [--models EPYC-Rome,Haswell-v4]

The native run is the gate's `avx2-machine` variant (every library at its AVX2 kernels), which
gave the rq-VAE cell a real AVX2 EPYC's digits; the emulated CPUs are AVX2 ones too. Inputs
come from numpy's seeded generator, the same bits on every CPU. Nothing is written outside a
temporary folder.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from gate_check import AVX2_MACHINE, QEMU_CPU, emulator, why_no_emulator  # this folder: the gate's variants

DEFAULT_MODELS = ("EPYC-Rome", "Haswell-v4")
NATIVE_ENV = AVX2_MACHINE
ESTIMATE_PROGRAM = r"""
#include <immintrin.h>
#include <stdio.h>
#include <string.h>
int main(void) {
    float in[4] = {0.3f, 2.0f, 3.14159f, 123.4f}, r[4], c[4];
    _mm_storeu_ps(r, _mm_rsqrt_ps(_mm_loadu_ps(in)));
    _mm_storeu_ps(c, _mm_rcp_ps(_mm_loadu_ps(in)));
    for (int i = 0; i < 4; i++) { unsigned a, b; memcpy(&a, &r[i], 4); memcpy(&b, &c[i], 4); printf("%08x/%08x ", a, b); }
    printf("\n");
    return 0;
}
"""


def ulps_off_correct_sqrt(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per element, how many float32 steps ``y`` lies from the correctly rounded sqrt of ``x``
    (x >= 0: float32 bit patterns of non-negative floats are ordered like their values)."""
    exact = np.sqrt(x.astype(np.float64)).astype(np.float32)
    return np.abs(y.astype(np.float32).view(np.int32).astype(np.int64) - exact.view(np.int32).astype(np.int64))


def op_results() -> tuple[dict[str, str], dict[str, int]]:
    """Hash of each op's result, and torch.sqrt's distance from correct rounding."""
    import torch

    torch.set_num_threads(2)  # as the CI grid pins
    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.random((256, 768), dtype=np.float32) * 4 - 2)
    b = torch.from_numpy(rng.random((768, 256), dtype=np.float32) * 4 - 2)
    positive = a.abs() + 1e-3
    ops = {
        "matmul": lambda: a @ b,
        "sum": lambda: a.sum(-1),
        "exp": lambda: a.exp(),
        "tanh": lambda: a.tanh(),
        "softmax": lambda: a.softmax(-1),
        "layer_norm": lambda: torch.nn.functional.layer_norm(a, (768,)),
        "gelu": lambda: torch.nn.functional.gelu(a),
        "sqrt": lambda: positive.sqrt(),
        "cdist": lambda: torch.cdist(a[:64], a[64:96]),
        "cdist without matmul": lambda: torch.cdist(a[:64], a[64:96], compute_mode="donot_use_mm_for_euclid_dist"),
    }
    hashes = {name: hashlib.sha1(op().contiguous().numpy().tobytes()).hexdigest()[:12] for name, op in ops.items()}
    off = ulps_off_correct_sqrt(positive.numpy(), positive.sqrt().numpy())
    return hashes, {"elements": int(off.size), "off": int((off > 0).sum()), "max_ulps": int(off.max())}


def run_child(env: dict[str, str]) -> tuple[dict[str, str], dict[str, int]]:
    command = [*emulator(env), sys.executable, __file__, "--child"]
    done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the ops under {env} failed: {done.stderr.strip()[-2000:]}")
    hashes, sqrt_line = done.stdout.strip().splitlines()[-2:]
    return dict(item.split("=", 1) for item in hashes.split(";")), {
        k: int(v) for k, v in (item.split("=") for item in sqrt_line.split(";"))}


def estimates(models: list[str], folder: Path) -> None:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        print("estimate instructions: skipped (no C compiler: cc or gcc)")
        return
    source, program = folder / "estimate.c", folder / "estimate"
    source.write_text(ESTIMATE_PROGRAM, encoding="utf-8")
    subprocess.run([compiler, "-O1", "-msse", str(source), "-o", str(program)], check=True)
    print("estimate instructions, rsqrtps/rcpps of 0.3, 2, 3.14159, 123.4 (float32 bits):")
    print(f"  {'native':<12} {subprocess.run([str(program)], capture_output=True, text=True).stdout.strip()}")
    for model in models:
        env = {QEMU_CPU: model}
        out = subprocess.run([*emulator(env), str(program)], env={**os.environ, **env}, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"CPU model {model!r}: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else 'failed'}")
        print(f"  {model:<12} {out.stdout.strip()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS),
                        help=f"QEMU CPU models, comma-separated [default: {','.join(DEFAULT_MODELS)}]")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        hashes, sqrt = op_results()
        print(";".join(f"{k}={v}" for k, v in hashes.items()))
        print(";".join(f"{k}={v}" for k, v in sqrt.items()))
        return 0
    if why := why_no_emulator():
        parser.error(why)
    models = [m for m in args.models.split(",") if m]
    with tempfile.TemporaryDirectory(prefix="indexbench-emulator-") as tmp:
        estimates(models, Path(tmp))
    runs = {"native": run_child(NATIVE_ENV), **{m: run_child({QEMU_CPU: m}) for m in models}}
    native = runs["native"][0]
    print("\ntorch ops: the same bits as native (the avx2-machine variant)?")
    print(f"  {'op':<22}" + "".join(f" {m:>12}" for m in models))
    for op in native:
        print(f"  {op:<22}" + "".join(f" {'same' if runs[m][0][op] == native[op] else 'DIFFERENT':>12}" for m in models))
    print("\ntorch.sqrt against the correctly rounded square root:")
    for name, (_, sqrt) in runs.items():
        print(f"  {name:<12} {sqrt['off']:>7} of {sqrt['elements']} elements off, by at most {sqrt['max_ulps']} ulp")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
