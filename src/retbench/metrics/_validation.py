"""Input checks shared by the metric functions and the evaluators.

Every check raises ``ValueError`` (``TypeError`` for a wrong type) with a message that names the
argument, says what was received and how to fix it (STYLE.md, habit 9). Never ``assert``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

AP_DEFINITIONS = ("sklearn", "trapezoid")


def check_embeddings(name: str, x: object) -> np.ndarray:
    """``x`` as a C-contiguous ``(n, d)`` float32 array of finite values (no copy when it already is one)."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy array of shape (n, d), got {type(x).__name__}; "
                        f"convert it with np.asarray(...)")  # fmt: skip
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n, d), got shape {x.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must have at least one row and one column, got shape {x.shape}")
    if x.dtype != np.float32:
        raise ValueError(f"{name} must be float32 (L2-normalised rows), got dtype {x.dtype}; "
                         f"convert it with {name}.astype(np.float32)")  # fmt: skip
    bad = nonfinite_rows(x)
    if bad.size:
        raise ValueError(f"{name} has non-finite values (NaN or inf) in {bad.size} row(s), first rows: "
                         f"{bad[:5].tolist()}; fix or drop those items before evaluating")  # fmt: skip
    return np.ascontiguousarray(x)


def nonfinite_rows(x: np.ndarray, chunk_rows: int = 1 << 14) -> np.ndarray:
    """Indices of the rows of a 2-D array holding NaN or inf, checked a chunk of rows at a time (the
    temporary mask stays small: a whole-matrix ``np.isfinite`` of 1M x 512 would take 512 MB)."""
    bad = [start + np.flatnonzero(~np.isfinite(x[start : start + chunk_rows]).all(axis=1))
           for start in range(0, x.shape[0], chunk_rows)]  # fmt: skip
    return np.concatenate(bad) if bad else np.zeros(0, dtype=np.int64)


def check_same_dimension(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray) -> None:
    """Two (n, d) matrices whose rows are compared must share d."""
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{name_a} and {name_b} must have the same dimension, got {a.shape[1]} and {b.shape[1]}")


def check_labels(name: str, labels: object, n: int, embeddings_name: str) -> np.ndarray:
    """``labels`` as an ``(n,)`` array of strings; one per row of ``embeddings_name``."""
    if isinstance(labels, (str, bytes)) or not isinstance(labels, (Sequence, np.ndarray)):
        raise TypeError(f"{name} must be a sequence of class labels (one per row of {embeddings_name}), "
                        f"got {type(labels).__name__}")  # fmt: skip
    if len(labels) != n:
        raise ValueError(f"{name} has {len(labels)} entries but {embeddings_name} has {n} rows; "
                         f"row i of {embeddings_name} must be item i of {name}")  # fmt: skip
    return np.asarray([str(label) for label in labels], dtype=object)


def check_ks(ks: object) -> tuple[int, ...]:
    """Sorted, de-duplicated positive cut-offs."""
    try:
        items = list(ks)  # type: ignore[call-overload]
    except TypeError:
        raise TypeError(f"ks must be a sequence of positive integers, got {ks!r}") from None
    if not all(isinstance(k, (int, np.integer)) and not isinstance(k, bool) for k in items):
        raise TypeError(f"ks must be a sequence of positive integers, got {ks!r}")
    if not items or min(items) < 1:
        raise ValueError(f"ks must be non-empty and every k >= 1, got {[int(k) for k in items]!r}")
    return tuple(sorted({int(k) for k in items}))


def check_k(name: str, k: object) -> int:
    """A single positive integer cut-off."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"{name} must be a positive integer, got {k!r}")
    return int(k)


def check_ap_definition(ap_definition: object) -> str:
    if ap_definition not in AP_DEFINITIONS:
        raise ValueError(f"ap_definition must be one of {list(AP_DEFINITIONS)}, got {ap_definition!r}")
    return str(ap_definition)


def check_non_negative_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def check_block_size(block_size: object) -> int | None:
    if block_size is None:
        return None
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise ValueError(f"block_size must be a positive integer (rows per block) or None (automatic), "
                         f"got {block_size!r}")  # fmt: skip
    return int(block_size)


def check_pr_levels(pr_levels: object) -> int:
    if isinstance(pr_levels, bool) or not isinstance(pr_levels, (int, np.integer)) or pr_levels < 2:
        raise ValueError(f"pr_levels must be an integer >= 2 (number of recall levels), got {pr_levels!r}")
    return int(pr_levels)


def check_relevance_and_scores(relevant: object, scores: object) -> tuple[np.ndarray, np.ndarray]:
    """``(Q, N)`` bool relevance and ``(Q, N)`` finite float scores of the same shape (1-D -> one query)."""
    rel = np.asarray(relevant)
    sc = np.asarray(scores)
    if rel.ndim == 1:
        rel = rel[None, :]
    if sc.ndim == 1:
        sc = sc[None, :]
    if rel.ndim != 2 or sc.ndim != 2:
        raise ValueError(f"relevant and scores must be 1-D (one query) or 2-D (n_queries, n_items), "
                         f"got shapes {np.shape(relevant)} and {np.shape(scores)}")  # fmt: skip
    if rel.shape != sc.shape:
        raise ValueError(f"relevant and scores must have the same shape, got {rel.shape} and {sc.shape}")
    if rel.dtype != np.bool_:
        if not np.isin(rel, (0, 1)).all():
            raise ValueError("relevant must be boolean (or 0/1), got values other than 0 and 1")
        rel = rel.astype(bool)
    if not np.issubdtype(sc.dtype, np.floating):
        if not np.issubdtype(sc.dtype, np.number) or np.issubdtype(sc.dtype, np.complexfloating):
            raise ValueError(f"scores must be real numbers, got dtype {sc.dtype}")
        sc = sc.astype(np.float64)
    if not np.isfinite(sc).all():
        raise ValueError("scores must be finite (no NaN or inf); drop or replace those items")
    return rel, sc


def check_mask(name: str, mask: object, shape: tuple[int, int]) -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim == 1:
        m = m[None, :]
    if m.shape != shape:
        raise ValueError(f"{name} must have the same shape as scores {shape}, got {np.shape(mask)}")
    if m.dtype != np.bool_:
        raise ValueError(f"{name} must be boolean (True = item is ranked), got dtype {m.dtype}")
    return m
