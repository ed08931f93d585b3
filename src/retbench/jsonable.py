"""Strict-JSON conversion shared by every result file: NaN/inf -> null, numpy -> Python, paths -> str."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def to_jsonable(value):
    """``value`` with NaN/inf as None and numpy scalars/arrays and paths as Python values, recursively."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value
