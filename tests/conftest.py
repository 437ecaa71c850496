"""Shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(os.environ.get("INDEXBENCH_SHARED_DATA")
                   or Path(__file__).resolve().parents[2] / "shared" / "data")


@pytest.fixture
def user(tmp_path, monkeypatch):
    """A user's environment: private store, cache and data locations under ``tmp_path/home``, so
    no test writes to the real user's."""
    home = tmp_path / "home"
    for var, sub in (("INDEXBENCH_RESULTS", "results.sqlite"), ("INDEXBENCH_CACHE", "cache"),
                     ("INDEXBENCH_DATA", "data")):
        monkeypatch.setenv(var, str(home / sub))
    return home


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real datasets in ``../shared/data`` (next to the repository); skips when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (it lives outside the repository)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def amazon_scientific(shared_data):
    from indexbench.datasets.amazon import load_lcrec

    return load_lcrec(shared_data / "amazon-scientific", name="amazon-scientific")


@pytest.fixture(scope="session")
def scifact(shared_data):
    from indexbench.datasets.beir import load_beir

    return load_beir(shared_data / "scifact", name="scifact")
