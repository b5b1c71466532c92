"""`sweepkit --version`: what a bug report needs first, one line per part."""

from __future__ import annotations

import importlib.metadata
import platform
import sys

from sweepkit import __version__


def _installed(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def sweeps_line() -> str:
    """The engine's release; on 0.2, that 0.3 fixes known bugs (see `sweepkit.engine`)."""
    from sweepkit import engine

    hint = f"; 0.3 fixes known bayes/hyperband bugs: {engine.GET_0_3}" if engine.is_0_2() else ""
    return f"sweeps {engine.version()} (the search engine{hint})"


def torch_line() -> str:
    """torch's release, its CUDA build, and the GPUs it sees (names, or why none)."""
    try:
        import torch
    except ImportError as exc:
        return f"torch not importable: {exc}"
    if torch.version.cuda is None:
        return f"torch {torch.__version__} (CPU build)"
    count = torch.cuda.device_count()  # honours CUDA_VISIBLE_DEVICES; 0 without a driver
    if count == 0:
        return f"torch {torch.__version__} (CUDA {torch.version.cuda} build; no GPU visible)"
    names = ", ".join(f"{i}: {torch.cuda.get_device_name(i)}" for i in range(count))
    return f"torch {torch.__version__} (CUDA {torch.version.cuda}; {count} GPU(s): {names})"


def version_report() -> str:
    """sweepkit, Python, wandb, the sweeps engine, numpy and torch with its GPUs."""
    return "\n".join(
        [
            f"sweepkit {__version__}",
            f"python {platform.python_version()} ({sys.executable}, {platform.platform()})",
            f"wandb {_installed('wandb')}",
            sweeps_line(),
            f"numpy {_installed('numpy')}",
            torch_line(),
        ]
    )
