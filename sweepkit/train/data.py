"""MNIST as four tensors, from torchvision's own loader.

Full MNIST is used when it is in ``data_dir`` or can be downloaded there. When
neither works (an air-gapped box, these build machines), the real 5,000-digit
sample bundled with sweepkit is unpacked into ``data_dir`` as standard IDX files
and read by the same `torchvision.datasets.MNIST` class.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gzip
import os
import shutil
import socket
import tempfile
import time
from importlib import resources
from pathlib import Path

import torch
import torchvision

from sweepkit.errors import ConfigError, DataError
from sweepkit.log import note
from sweepkit.train.config import default_data_dir

SAMPLE_FOLDER = "sweepkit-mnist-sample"
DOWNLOAD_TIMEOUT_S = 20.0
DOWNLOAD_FAILED_MARKER = ".sweepkit-download-failed"
RETRY_DOWNLOAD_AFTER_S = 3600.0


@dataclasses.dataclass(frozen=True)
class MnistData:
    """Images as uint8 (N, 28, 28), labels as int64 (N,), on the CPU."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    source: str  # "mnist" or "sample"


def load_mnist(dataset: str, data_dir: str) -> MnistData:
    """Load MNIST train and test splits.

    Args:
        dataset: "mnist" (full MNIST or an error), "sample" (the bundled
            sample) or "auto" (full MNIST when possible, else the sample, with
            one line saying so).
        data_dir: folder holding ``MNIST/raw`` (torchvision's layout).

    Returns:
        The four tensors and which source they came from.

    >>> load_mnist("sample", "/tmp/sweepkit-doctest").train_images.shape
    torch.Size([4000, 28, 28])
    """
    # Cached per process: an agent running many runs reads the files once.
    return _load_cached(dataset, str(Path(data_dir).expanduser().resolve()))


@functools.cache
def _load_cached(dataset: str, data_dir: str) -> MnistData:
    if dataset == "sample":
        return _read(_unpack_sample(Path(data_dir)), "sample")
    if dataset not in ("mnist", "auto"):
        raise ConfigError(f"dataset must be auto, mnist or sample (got {dataset!r})")
    if _full_mnist_present(data_dir) or _try_download(data_dir):
        return _read(data_dir, "mnist")
    if dataset == "mnist":
        raise DataError(
            f"full MNIST is not in {data_dir}/MNIST/raw and could not be downloaded; "
            "copy the four MNIST IDX files there, or use dataset=sample"
        )
    note(
        f"full MNIST is not in {data_dir} and could not be downloaded: using the bundled "
        "sample (5,000 real MNIST digits). For full MNIST put its IDX files in "
        f"{data_dir}/MNIST/raw or set SWEEPKIT_DATA_DIR."
    )
    return _read(_unpack_sample(Path(data_dir)), "sample")


def _read(root: str | Path, source: str) -> MnistData:
    train = torchvision.datasets.MNIST(str(root), train=True, download=False)
    test = torchvision.datasets.MNIST(str(root), train=False, download=False)
    return MnistData(train.data, train.targets, test.data, test.targets, source)


def _full_mnist_present(data_dir: str) -> bool:
    raw = Path(data_dir) / "MNIST" / "raw"
    names = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
    names += ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    return all((raw / name).is_file() for name in names)


def _try_download(data_dir: str) -> bool:
    """Let torchvision download MNIST; False (not an error) when there is no network.

    A failure is remembered for an hour in data_dir: every run of a sweep is a
    new process, and on a firewalled cluster each try can hang for the timeout.
    """
    marker = Path(data_dir) / DOWNLOAD_FAILED_MARKER
    if marker.exists() and time.time() - marker.stat().st_mtime < RETRY_DOWNLOAD_AFTER_S:
        return False
    previous = socket.getdefaulttimeout()
    # torchvision's urlopen has no timeout: a firewalled cluster would hang here.
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        torchvision.datasets.MNIST(data_dir, train=True, download=True)
        torchvision.datasets.MNIST(data_dir, train=False, download=True)
        return True
    except (OSError, RuntimeError):
        with contextlib.suppress(OSError):  # a read-only data_dir: just try again next time
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
        return False
    finally:
        socket.setdefaulttimeout(previous)


def sample_root(data_dir: str | Path | None = None) -> Path:
    """The bundled sample as a `torchvision.datasets.MNIST` root, unpacked on first use: for
    code of one's own that reads MNIST with torchvision (`examples/tables_quickstart_sweep.py`).

    Args:
        data_dir: where to unpack it (default: $SWEEPKIT_DATA_DIR or ~/.cache/sweepkit/data).

    Raises:
        DataError: the folder cannot be written.
    """
    return _unpack_sample(Path(data_dir or default_data_dir()).expanduser())


def _unpack_sample(data_dir: Path) -> Path:
    """Write the bundled sample's IDX files under data_dir, once; return the torchvision root."""
    root = data_dir / SAMPLE_FOLDER
    raw = root / "MNIST" / "raw"
    packed = resources.files("sweepkit.data") / "mnist_sample"
    try:
        raw.mkdir(parents=True, exist_ok=True)
        for item in packed.iterdir():
            if not item.name.endswith(".gz"):
                continue
            target = raw / item.name.removesuffix(".gz")
            if target.exists():
                continue
            # Unpack to a temporary name and rename: parallel workers never read half a file.
            with item.open("rb") as src, gzip.open(src) as unzipped:
                fd, tmp = tempfile.mkstemp(dir=raw, prefix=".unpack-")
                with os.fdopen(fd, "wb") as dst:
                    shutil.copyfileobj(unzipped, dst)
            os.replace(tmp, target)
    except OSError as exc:
        raise DataError(
            f"cannot unpack the MNIST sample into {raw}: {exc.strerror or exc}; "
            "set SWEEPKIT_DATA_DIR (or data_dir) to a writable folder"
        ) from exc
    return root
