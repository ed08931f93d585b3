"""Revisited Oxford / Paris ground truth (``gnd_roxford5k.pkl``, ``gnd_rparis6k.pkl``).

The file is a pickle of ``{"imlist": [...], "qimlist": [...], "gnd": [{"easy", "hard", "junk",
"bbx"}, ...]}`` (one ``gnd`` entry per query; index arrays into ``imlist``). It is read with a
restricted unpickler that only rebuilds builtin containers and numpy arrays, so a crafted file
cannot run code. :func:`revisited_setup` builds the three protocols exactly as revisitop's
``python/evaluate.py`` does:

- Easy:   ok = easy,        junk = junk + hard
- Medium: ok = easy + hard, junk = junk
- Hard:   ok = hard,        junk = junk + easy

Pass the result to :func:`retbench.metrics.evaluate_ground_truth` (with
``ap_definition="trapezoid"`` to reproduce revisitop's published numbers).
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SETUPS = ("easy", "medium", "hard")
#: each setup's rule, as results.json records it (``summary.setup_rule``).
SETUP_RULES = {"easy": "ok = easy; junk = junk + hard", "medium": "ok = easy + hard; junk = junk",
               "hard": "ok = hard; junk = junk + easy"}  # fmt: skip

_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "slice"),
    ("builtins", "complex"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: a ground-truth file may only hold lists, dicts, "
            f"strings, numbers and numpy arrays"
        )


def safe_load_pickle(data: bytes, source: str = "<bytes>"):
    """Unpickle ``data`` allowing only builtin containers and numpy arrays (ValueError otherwise)."""
    try:
        return _SafeUnpickler(io.BytesIO(data), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, TypeError) as error:
        raise ValueError(f"{source}: not a readable ground-truth pickle ({error})") from None


@dataclass(frozen=True)
class RevisitedGroundTruth:
    """Parsed ground truth: ``imlist`` (N gallery names), ``qimlist`` (Q query names), and per query
    ``easy`` / ``hard`` / ``junk`` int64 index arrays into ``imlist`` and ``bbx`` (query box or None)."""

    imlist: list[str]
    qimlist: list[str]
    easy: list[np.ndarray]
    hard: list[np.ndarray]
    junk: list[np.ndarray]
    bbx: list[np.ndarray | None]


def load_revisited_ground_truth(path: str | Path) -> RevisitedGroundTruth:
    """Read and validate a ``gnd_*.pkl`` file (see module docstring); errors name the file and the entry."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ground-truth file {path} does not exist (expected e.g. gnd_roxford5k.pkl)")
    raw = safe_load_pickle(path.read_bytes(), str(path))
    return parse_revisited_ground_truth(raw, str(path))


def parse_revisited_ground_truth(raw: object, source: str = "<ground truth>") -> RevisitedGroundTruth:
    """Validate an already-loaded ground-truth dict."""
    if not isinstance(raw, dict) or not {"imlist", "qimlist", "gnd"} <= set(raw):
        keys = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
        raise ValueError(f"{source}: expected a dict with keys 'imlist', 'qimlist', 'gnd', got {keys}")
    imlist = [str(x) for x in raw["imlist"]]
    qimlist = [str(x) for x in raw["qimlist"]]
    gnd = raw["gnd"]
    if len(gnd) != len(qimlist):
        raise ValueError(f"{source}: 'gnd' has {len(gnd)} entries but 'qimlist' has {len(qimlist)} queries")
    lists: dict[str, list[np.ndarray]] = {"easy": [], "hard": [], "junk": []}
    bbx: list[np.ndarray | None] = []
    for q, entry in enumerate(gnd):
        if not isinstance(entry, dict):
            raise ValueError(f"{source}: gnd[{q}] must be a dict, got {type(entry).__name__}")
        for key in lists:
            if key not in entry:
                raise ValueError(f"{source}: gnd[{q}] has no '{key}' list (keys: {sorted(entry)})")
            arr = np.asarray(entry[key]).ravel()
            if arr.size and not np.issubdtype(arr.dtype, np.integer):
                raise ValueError(f"{source}: gnd[{q}]['{key}'] must hold integer indices, got dtype {arr.dtype}")
            arr = arr.astype(np.int64)
            if arr.size and (arr.min() < 0 or arr.max() >= len(imlist)):
                raise ValueError(f"{source}: gnd[{q}]['{key}'] has indices outside [0, {len(imlist)})")
            lists[key].append(arr)
        box = entry.get("bbx")
        bbx.append(None if box is None else np.asarray(box, dtype=np.float64))
    return RevisitedGroundTruth(imlist=imlist, qimlist=qimlist, easy=lists["easy"], hard=lists["hard"],
                                junk=lists["junk"], bbx=bbx)  # fmt: skip


def revisited_setup(gnd: RevisitedGroundTruth, setup: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``(ok, junk)`` index lists of the ``"easy"``, ``"medium"`` or ``"hard"`` protocol (module docstring)."""
    if setup not in SETUPS:
        raise ValueError(f"setup must be one of {list(SETUPS)}, got {setup!r}")
    if setup == "easy":
        return list(gnd.easy), [np.concatenate([j, h]) for j, h in zip(gnd.junk, gnd.hard)]
    if setup == "medium":
        return [np.concatenate([e, h]) for e, h in zip(gnd.easy, gnd.hard)], list(gnd.junk)
    return list(gnd.hard), [np.concatenate([j, e]) for j, e in zip(gnd.junk, gnd.easy)]
