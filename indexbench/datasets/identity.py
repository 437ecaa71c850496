"""Whether a loaded dataset *is* a known public split, and if not, how it differs.

A split of user sequences is identified by its sequences up to the names of users and items:
users in order (by number when every user id is an integer, else as loaded), items renamed
0, 1, 2, ... in order of first appearance. So the same Beauty split read from the LC-Rec layout
(items numbered from 0), P5's ``user_sequence.txt`` (from 1) or RecBole's atomic files has one
identity, and a copy with one interaction removed has another. For a known split whose data was
at hand when it was registered, a 4-byte digest per user is kept too, which finds the first
user that differs. Datasets without sequences (BEIR) are identified by their content
fingerprint (`Dataset.fingerprint`).

The known splits are in ``known_splits.toml`` beside this module, each with its source.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import tomllib

if TYPE_CHECKING:
    from ..data import Dataset

DIGEST_BYTES = 4
CLOSE = 0.1
"""A dataset is compared with a known split (when its name is not one) if its users and items
are each within this fraction of the split's: near enough to be meant as that split."""


@dataclass(frozen=True)
class KnownSplit:
    key: str
    title: str
    source: str
    users: int = 0
    items: int = 0
    interactions: int = 0
    documents: int = 0
    fingerprint: str = ""
    """The sequences' identity (or, for datasets without sequences, the content fingerprint);
    empty where the data was not at hand to compute it (statistics only)."""
    digests: str = ""
    """Resource file of per-user digests, in user order; empty if none."""
    datasets: tuple[str, ...] = ()
    """Registered dataset names meant to be this split."""

    def statistics(self) -> dict[str, int]:
        stats = {"users": self.users, "items": self.items, "interactions": self.interactions,
                 "documents": self.documents}
        return {k: v for k, v in stats.items() if v}


@dataclass(frozen=True)
class Identity:
    """What `identify` found. ``split`` is the known split it is, or was compared with."""

    status: str  # "canonical" | "same-statistics" | "differs" | "unknown"
    split: str = ""
    summary: str = ""
    fingerprint: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"status": self.status, "split": self.split, "summary": self.summary, "fingerprint": self.fingerprint}


@lru_cache(maxsize=1)
def known_splits() -> tuple[KnownSplit, ...]:
    text = resources.files(__package__).joinpath("known_splits.toml").read_text(encoding="utf-8")
    splits = []
    for key, row in tomllib.loads(text).items():
        row = dict(row)
        row["datasets"] = tuple(row.get("datasets", ()))
        splits.append(KnownSplit(key=key, **row))
    return tuple(splits)


def _user_order(users: list[str]) -> list[str]:
    if all(u.strip().lstrip("-").isdigit() for u in users):
        return sorted(users, key=int)
    return users


def canonical_sequences(interactions: dict[str, list[str]]) -> tuple[list[str], list[list[int]]]:
    """(users in canonical order, their sequences with items renamed by first appearance)."""
    users = _user_order(list(interactions))
    names: dict[str, int] = {}
    sequences = [[names.setdefault(item, len(names)) for item in interactions[user]] for user in users]
    return users, sequences


def sequence_fingerprint(sequences: list[list[int]]) -> str:
    blob = json.dumps(sequences, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def user_digests(sequences: list[list[int]]) -> bytes:
    """DIGEST_BYTES per user: a short hash of that user's renamed sequence."""
    return b"".join(hashlib.blake2b(json.dumps(seq, separators=(",", ":")).encode(),
                                    digest_size=DIGEST_BYTES).digest() for seq in sequences)


def statistics(dataset: Dataset) -> dict[str, int]:
    if dataset.interactions:
        seqs = dataset.interactions.values()
        return {"users": len(dataset.interactions), "items": len({i for s in seqs for i in s}),
                "interactions": sum(len(s) for s in seqs)}
    return {"documents": len(dataset.corpus)}


def identify(dataset: Dataset, registered_as: str | None = None) -> Identity:
    """Which known split ``dataset`` is, or the nearest one it differs from (the one its
    registered name is meant as first, else one within `CLOSE` in users and items)."""
    stats = statistics(dataset)
    if dataset.interactions:
        users, sequences = canonical_sequences(dataset.interactions)
        fingerprint = sequence_fingerprint(sequences)
    else:
        users, sequences, fingerprint = [], [], dataset.fingerprint
    splits = known_splits()
    for split in splits:
        if split.fingerprint and split.fingerprint == fingerprint:
            return Identity("canonical", split.key, f"is {split.title}", fingerprint)
    name = registered_as or dataset.name.split(":")[0]
    nearest = next((s for s in splits if name in s.datasets), None) or next(
        (s for s in splits if _close(stats, s.statistics())), None)
    if nearest is None:
        return Identity("unknown", "", "not a known split", fingerprint)
    if not nearest.fingerprint and stats == nearest.statistics():
        return Identity("same-statistics", nearest.key, f"has the statistics of {nearest.title} "
                        "(its sequences are not on record to compare)", fingerprint)
    return Identity("differs", nearest.key,
                    f"differs from {nearest.title}: " + _differences(stats, nearest, users, sequences), fingerprint)


def _close(stats: dict[str, int], known: dict[str, int]) -> bool:
    shared = [k for k in ("users", "items", "documents") if k in stats and k in known]
    return bool(shared) and all(abs(stats[k] - known[k]) <= CLOSE * known[k] for k in shared)


def _differences(stats: dict[str, int], split: KnownSplit, users: list[str], sequences: list[list[int]]) -> str:
    parts = []
    for name, expected in split.statistics().items():
        got = stats.get(name, 0)
        if got != expected:
            parts.append(f"{name} {got:,} against {expected:,} ({got - expected:+,})")
    if split.digests and sequences:
        first = _first_differing_user(split, users, sequences)
        if first is not None:
            parts.append(first)
    return "; ".join(parts) or "same statistics, other sequences"


def _first_differing_user(split: KnownSplit, users: list[str], sequences: list[list[int]]) -> str | None:
    known = resources.files(__package__).joinpath(split.digests).read_bytes()
    ours = user_digests(sequences)
    for row in range(min(len(known), len(ours)) // DIGEST_BYTES):
        lo = row * DIGEST_BYTES
        if known[lo:lo + DIGEST_BYTES] != ours[lo:lo + DIGEST_BYTES]:
            return f"first differing user: {users[row]!r} (the {_ordinal(row + 1)} in order)"
    if len(ours) != len(known):
        row = min(len(known), len(ours)) // DIGEST_BYTES
        return f"first differing user: the {_ordinal(row + 1)} in order ({'extra' if len(ours) > len(known) else 'missing'})"
    return None


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n:,}{suffix}"


def describe(identity: Identity | dict[str, Any] | None) -> str:
    """One line for listings and leaderboards."""
    if identity is None:
        return ""
    if isinstance(identity, dict):
        return identity.get("summary", "")
    return identity.summary


__all__ = ["Identity", "KnownSplit", "canonical_sequences", "describe", "identify", "known_splits",
           "sequence_fingerprint", "statistics", "user_digests"]
