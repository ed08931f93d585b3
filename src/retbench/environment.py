"""The one place where retbench reads environment variables.

- ``RETBENCH_CACHE_DIR``: where embeddings (and other derived files) are cached.
  Default: the user cache directory (``~/.cache/retbench`` on Linux).
- ``RETBENCH_OFFLINE=1`` (or the ecosystem's ``HF_HUB_OFFLINE=1``): never try to
  download pretrained weights; fail at once with instructions instead.
"""

from __future__ import annotations

import os
from pathlib import Path

_TRUE = {"1", "true", "yes", "on"}


def default_cache_dir() -> Path:
    """Root of retbench's cache: ``$RETBENCH_CACHE_DIR`` or the platform user cache dir."""
    configured = os.environ.get("RETBENCH_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("retbench"))


def offline_mode() -> bool:
    """True when downloads must not be attempted (``RETBENCH_OFFLINE`` or ``HF_HUB_OFFLINE``)."""
    return any(os.environ.get(name, "").strip().lower() in _TRUE for name in ("RETBENCH_OFFLINE", "HF_HUB_OFFLINE"))
