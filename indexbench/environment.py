"""Where a cell runs, as its record states it: the device, torch's threads, the seeds, the
package versions, the CPU's vector instructions and the code's commit."""

from __future__ import annotations

import os
import platform
import random
import subprocess
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .errors import IndexbenchError

_TRACKED_PACKAGES = ("indexbench", "torch", "transformers", "faiss-cpu", "bm25s", "ir-measures",
                     "scikit-learn", "numpy")



def resolve_device(device: str) -> str:
    if device not in {"auto", "cpu", "cuda"}:
        raise IndexbenchError(f"unknown device {device!r}; valid devices: auto, cpu, cuda")
    if device == "cpu":
        return "cpu"
    import importlib.util

    has_cuda = False
    if importlib.util.find_spec("torch") is not None:
        import torch

        has_cuda = torch.cuda.is_available()
    if device == "cuda" and not has_cuda:
        raise IndexbenchError("device cuda was asked for, but torch sees no CUDA device")
    return "cuda" if has_cuda else "cpu"


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def pin_threads(threads: int) -> None:
    """Run torch (and the OpenMP and MKL runtimes it loads) with ``threads`` intra-op threads,
    whatever the machine's core count or ``OMP_NUM_THREADS``: sums split over another number of
    threads round differently, and a trained cell amplifies that into other numbers. The setting
    holds for the rest of the process (torch has one thread pool), and the environment
    variables pass it on to child processes."""
    for name in THREAD_VARIABLES:  # for a torch not imported yet, and for child processes
        os.environ[name] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def torch_threads() -> int | None:
    """torch's intra-op thread count, or None when no cell has imported torch (it then did not
    compute anything)."""
    if "torch" not in sys.modules:
        return None
    return int(sys.modules["torch"].get_num_threads())


def seed_everything(seed: int) -> None:
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:
        pass
    if "torch" in sys.modules:  # seed torch only if a plugin already paid for importing it
        sys.modules["torch"].manual_seed(seed)


FLOAT_PATH_VARIABLES = ("MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA",
                        "NPY_DISABLE_CPU_FEATURES", "NPY_ENABLE_CPU_FEATURES", "QEMU_CPU")
"""Environment variables that choose a library's float kernels without the choice showing in a
level the library reports (`kernel_levels` covers torch's, faiss's and OpenBLAS's): MKL's GEMM
path, oneDNN's instruction-set cap, numpy's SIMD loops; and the CPU model QEMU's user-mode
emulator gives a process, which every library reads (there `cpu` and `cpu_vendor`, read from
/proc/cpuinfo, still describe the host). A trained cell's numbers move with them."""

ENVIRONMENT_FIELD = "env:"
"""Prefix of the `versions` fields that record a set `FLOAT_PATH_VARIABLES` entry; a record
without one ran with that variable unset."""


def float_path_variables(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The `FLOAT_PATH_VARIABLES` set (non-empty) in ``environ`` (default: this process's), as
    ``{"env:MKL_CBWR": "COMPATIBLE"}``; none set gives ``{}``."""
    environ = os.environ if environ is None else environ
    return {ENVIRONMENT_FIELD + name: environ[name] for name in FLOAT_PATH_VARIABLES if environ.get(name)}


def package_versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "cpu": cpu_isa()}
    if vendor := cpu_vendor():
        found["cpu_vendor"] = vendor
    found.update(float_path_variables())
    for name in _TRACKED_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


def cpu_isa(flags: Sequence[str] | None = None) -> str:
    """The machine and the widest vector instructions its CPU offers (``x86_64 avx512``), plus
    ``amx`` where it has AMX bf16 tiles: the float kernels of torch, MKL and oneDNN pick their
    code path by these, and a trained cell's numbers at one seed differ between paths (a tiny
    rq-VAE's codes moved between an AVX2 and an AVX-512 machine; bf16 runs on AMX tiles only
    where they exist), so records carry it and `compare` names it when it differs. ``flags``:
    the CPU's feature flags (default: this machine's, from /proc/cpuinfo)."""
    machine = platform.machine() or "unknown"
    if flags is None:
        found = _cpuinfo("flags")
        if found is None:  # not Linux: the machine name alone
            return machine
        flags = found.split()
    for level, flag in (("avx512", "avx512f"), ("avx2", "avx2"), ("avx", "avx"), ("sse4.2", "sse4_2")):
        if flag in flags:
            return f"{machine} {level}" + (" amx" if "amx_bf16" in flags else "")
    return machine


_VENDORS = {"GenuineIntel": "intel", "AuthenticAMD": "amd"}


def cpu_vendor(vendor_id: str | None = None) -> str:
    """``intel`` or ``amd`` (else the CPU's own vendor string; empty where unknown). MKL, which
    torch's CPU matrix products run on, picks its code path by vendor as well as by
    instruction set: an Intel and an AMD CPU with the same `cpu_isa` may still round differently.
    ``vendor_id``: the CPU's vendor string (default: this machine's, from /proc/cpuinfo)."""
    if vendor_id is None:
        vendor_id = _cpuinfo("vendor_id") or ""
    return _VENDORS.get(vendor_id, vendor_id)


def _cpuinfo(field: str) -> str | None:
    """The first CPU's ``field`` in /proc/cpuinfo ("" when absent), or None without that file."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            return next((line.split(":", 1)[1].strip() for line in fh if line.split(":", 1)[0].strip() == field), "")
    except OSError:
        return None


def kernel_levels() -> dict[str, str]:
    """The instruction-set level each loaded numeric library actually runs at, which environment
    variables can set below the CPU's (``ATEN_CPU_CAPABILITY``, ``FAISS_SIMD_LEVEL``,
    ``OPENBLAS_CORETYPE``) and which two libraries may choose differently on one CPU:
    ``{"torch_isa": "AVX512", "faiss_isa": "AVX512_VPOPCNT", "openblas_core:numpy": "SkylakeX",
    "openblas_core:faiss_cpu": "Zen"}`` (numpy's and faiss's wheels each bundle an OpenBLAS).
    Only libraries this process has already loaded are asked (nothing is imported for it), so a
    cell that loads none has none."""
    levels = {}
    torch = sys.modules.get("torch")
    if torch is not None:
        levels["torch_isa"] = str(torch.backends.cpu.get_cpu_capability())
    faiss = sys.modules.get("faiss")
    config = getattr(faiss, "SIMDConfig", None)
    if config is not None:  # faiss >= 1.13 dispatches at run time; older wheels load one build
        levels["faiss_isa"] = str(config.get_level_name())
    if "numpy" in sys.modules or faiss is not None:
        try:
            from threadpoolctl import threadpool_info
        except ImportError:  # scikit-learn's dependency; absent only in a bare install
            return levels
        for lib in threadpool_info():
            if lib.get("internal_api") == "openblas" and lib.get("architecture"):
                levels[f"openblas_core:{_bundling_package(str(lib.get('filepath', '')))}"] = str(lib["architecture"])
    return levels


def _bundling_package(library_path: str) -> str:
    """The wheel that bundles a shared library (``numpy`` for .../numpy.libs/libscipy_openblas...
    on Linux and .../numpy/.dylibs/... on macOS, ``faiss_cpu`` for .../faiss_cpu.libs/...), else
    the library's own file name."""
    parts = Path(library_path).parts
    bundled = [part[: -len(".libs")] if part.endswith(".libs") else parts[i - 1]
               for i, part in enumerate(parts) if i and (part.endswith(".libs") or part == ".dylibs")]
    return bundled[-1] if bundled else (parts[-1].split(".")[0] if parts else "unknown")


def loaded_by_the_process(field: str) -> bool:
    """Whether a `versions` field is recorded only once the process has loaded the library it
    describes (torch's threads, the kernel levels): a side without it did not load that library
    there, which is no difference of machine. `indexbench.compare` names such a field only where
    both sides have it."""
    return field in ("threads", "torch_isa", "faiss_isa") or field.startswith("openblas_core:")


def git_commit() -> str:
    """The commit of the indexbench checkout, with ``+dirty`` for uncommitted changes."""
    here = Path(__file__).resolve().parent
    try:
        def git(*args: str) -> str:
            return subprocess.run(["git", "-C", str(here), *args], capture_output=True, text=True,
                                  timeout=5, check=True, env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
                                  ).stdout.strip()

        commit = git("rev-parse", "HEAD")
        return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return ""


__all__ = ["ENVIRONMENT_FIELD", "FLOAT_PATH_VARIABLES", "THREAD_VARIABLES", "cpu_isa", "cpu_vendor",
           "float_path_variables", "git_commit", "kernel_levels", "loaded_by_the_process", "package_versions",
           "pin_threads", "resolve_device", "seed_everything", "torch_threads"]
