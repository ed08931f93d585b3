"""The evaluation protocols: leave-one-out (the default), query/gallery, and per-query ground truth.

Each validates its inputs, ranks the database for every query block by block, turns the ranks into
per-query metrics at once (memory stays O(block x N)), and aggregates them into an
:class:`~retbench.metrics.evaluation.Evaluation`. Scores are cosine similarities = dot products of
the L2-normalised float32 rows, computed in float32 (so APs can differ from a float64 computation
when two scores are within float32 rounding of each other; see docs/metrics.md).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Mapping, Sequence

import numpy as np

from retbench.metrics import _engine
from retbench.metrics._validation import (
    check_ap_definition,
    check_block_size,
    check_embeddings,
    check_ks,
    check_labels,
    check_non_negative_int,
    check_pr_levels,
    check_same_dimension,
)
from retbench.metrics.evaluation import Evaluation, metric_keys, per_query_key, per_query_metrics, summarise
from retbench.metrics.pr_curve import recall_levels
from retbench.metrics.statistics import bootstrap_ci

logger = logging.getLogger(__name__)

TIE_RULE = ("ranking: descending score, equal scores by ascending database index (stable); "
            "sklearn AP and PR curve: equal scores share one threshold")  # fmt: skip
SCORE = "cosine similarity = dot product of L2-normalised rows, computed in float32"


def evaluate(embeddings: np.ndarray, labels: Sequence[str], *, ks: Sequence[int] = (1, 5, 10, 100),
             block_size: int | None = None, device: str = "cpu", n_bootstrap: int = 1000, seed: int = 0,
             ap_definition: str = "sklearn", pr_levels: int = 101, backend: str = "auto") -> Evaluation:  # fmt: skip
    """Leave-one-out retrieval evaluation: every row is a query against all the other rows.

    Args:
        embeddings: (N, D) float32, L2-normalised rows; row i = item i.
        labels: N class labels; an item is relevant to a query when their labels are equal.
        ks: cut-offs for precision@K, recall@K, map@K and ndcg@K.
        block_size: queries per block (memory ~ 4 * block_size * N bytes); None: about 128 MiB of scores.
        device: "cpu" or "cuda[:N]" (the matrix products and counting run there with torch).
        n_bootstrap: resamples for the 95% bootstrap CIs (``<key>_ci95``); 0 disables them.
        seed: bootstrap seed.
        ap_definition: "sklearn" (default; equals ``sklearn.metrics.average_precision_score`` over the
            N-1 other items, ties included) or "trapezoid" (Revisited Oxford/Paris ``compute_ap``).
        pr_levels: number of recall levels of the PR curve (``np.linspace(0, 1, pr_levels)``).
        backend: "auto" (numba kernel on the CPU when numba is installed, else torch), "numba" or "torch".

    The query is excluded from its own ranking by index, not by score: an identical image with
    another label is a retrieved non-relevant item, one with the same label a relevant item.

    The numba backend compiles its kernels on the first call in a new environment (about 10 s) and
    caches them on disk. Results are bit-for-bit reproducible for the same inputs and options.
    """
    embeddings = check_embeddings("embeddings", embeddings)
    label_array = check_labels("labels", labels, embeddings.shape[0], "embeddings")
    _, codes = np.unique(label_array.astype(str), return_inverse=True)
    codes = codes.astype(np.int64)
    problem = _engine.RankingProblem.same_label(embeddings, codes, embeddings, codes,
                                                self_index=np.arange(embeddings.shape[0], dtype=np.int64))  # fmt: skip
    return _run(problem, label_array, "leave-one-out", ks=ks, block_size=block_size, device=device,
                n_bootstrap=n_bootstrap, seed=seed, ap_definition=ap_definition, pr_levels=pr_levels,
                backend=backend)  # fmt: skip


def evaluate_query_gallery(query_embeddings: np.ndarray, query_labels: Sequence[str], gallery_embeddings: np.ndarray,
                           gallery_labels: Sequence[str], *, ks: Sequence[int] = (1, 5, 10, 100),
                           block_size: int | None = None, device: str = "cpu", n_bootstrap: int = 1000,
                           seed: int = 0, ap_definition: str = "sklearn", pr_levels: int = 101,
                           backend: str = "auto") -> Evaluation:  # fmt: skip
    """Queries ranked against a separate gallery (no exclusion); relevant = same label.

    Shapes: query_embeddings (Q, D) and gallery_embeddings (N, D) float32, L2-normalised. A query
    whose label does not occur in the gallery has no relevant item (NaN). Other arguments as in
    :func:`evaluate`.
    """
    queries = check_embeddings("query_embeddings", query_embeddings)
    gallery = check_embeddings("gallery_embeddings", gallery_embeddings)
    check_same_dimension("query_embeddings", queries, "gallery_embeddings", gallery)
    q_labels = check_labels("query_labels", query_labels, queries.shape[0], "query_embeddings")
    g_labels = check_labels("gallery_labels", gallery_labels, gallery.shape[0], "gallery_embeddings")
    names, g_codes = np.unique(g_labels.astype(str), return_inverse=True)
    position = np.searchsorted(names, q_labels.astype(str))
    found = (position < names.size) & (names[np.minimum(position, names.size - 1)] == q_labels.astype(str))
    problem = _engine.RankingProblem.same_label(queries, np.where(found, position, -1), gallery, g_codes,
                                                self_index=np.full(queries.shape[0], -1, dtype=np.int64))  # fmt: skip
    return _run(problem, q_labels, "query/gallery", ks=ks, block_size=block_size, device=device,
                n_bootstrap=n_bootstrap, seed=seed, ap_definition=ap_definition, pr_levels=pr_levels,
                backend=backend)  # fmt: skip


def evaluate_ground_truth(query_embeddings: np.ndarray, gallery_embeddings: np.ndarray, ok: Sequence[np.ndarray],
                          junk: Sequence[np.ndarray], *, ks: Sequence[int] = (1, 5, 10, 100),
                          block_size: int | None = None, device: str = "cpu", n_bootstrap: int = 1000, seed: int = 0,
                          ap_definition: str = "sklearn", pr_levels: int = 101,
                          backend: str = "auto") -> Evaluation:  # fmt: skip
    """Per-query ground truth (Revisited Oxford/Paris style): relevant = ``ok[q]``, ``junk[q]`` removed.

    Args:
        query_embeddings: (Q, D) float32; gallery_embeddings: (N, D) float32; L2-normalised rows.
        ok: Q integer arrays of gallery indices relevant to each query (empty: AP = NaN).
        junk: Q integer arrays of gallery indices removed from that query's ranking before any
            metric (neither relevant nor counted as retrieved). An index in both lists is junk.
        ap_definition: "sklearn" (default) or "trapezoid" (what revisitop reports: use it to
            reproduce published Revisited Oxford/Paris mAPs).
        Other arguments as in :func:`evaluate`.

    The queries are not part of the gallery. Per-class results are empty (there are no labels).
    To evaluate several ok/junk definitions (the easy / medium / hard setups), use
    :func:`evaluate_ground_truth_setups`: it computes the scores once for all of them.
    """
    return evaluate_ground_truth_setups(query_embeddings, gallery_embeddings, {None: (ok, junk)}, ks=ks,
                                        block_size=block_size, device=device, n_bootstrap=n_bootstrap, seed=seed,
                                        ap_definition=ap_definition, pr_levels=pr_levels, backend=backend)[None]  # fmt: skip


def evaluate_ground_truth_setups(query_embeddings: np.ndarray, gallery_embeddings: np.ndarray,
                                 setups: Mapping[str | None, tuple[Sequence[np.ndarray], Sequence[np.ndarray]]], *,
                                 ks: Sequence[int] = (1, 5, 10, 100), block_size: int | None = None,
                                 device: str = "cpu", n_bootstrap: int = 1000, seed: int = 0,
                                 ap_definition: str = "sklearn", pr_levels: int = 101,
                                 backend: str = "auto") -> dict[str | None, Evaluation]:  # fmt: skip
    """:func:`evaluate_ground_truth` of several ground truths of the same queries and gallery.

    ``setups`` maps a name (e.g. "easy", "medium", "hard") to its ``(ok, junk)`` lists; each
    block of query x gallery scores is computed once and ranked for every setup, so three setups
    cost about one product pass instead of three. Returns one :class:`Evaluation` per name, each
    equal to what :func:`evaluate_ground_truth` gives for that setup alone.
    """
    queries = check_embeddings("query_embeddings", query_embeddings)
    gallery = check_embeddings("gallery_embeddings", gallery_embeddings)
    check_same_dimension("query_embeddings", queries, "gallery_embeddings", gallery)
    n_queries, n_gallery = queries.shape[0], gallery.shape[0]
    if not setups:
        raise ValueError("setups must name at least one (ok, junk) pair")
    problems = {}
    for name, (ok, junk) in setups.items():
        where = "" if name is None else f" of setup {name!r}"
        ok_lists = _check_index_lists("ok", ok, n_queries, n_gallery, where)
        junk_lists = _check_index_lists("junk", junk, n_queries, n_gallery, where)
        problems[name] = _engine.RankingProblem.with_lists(queries, gallery, ok_lists, junk_lists)
    evaluations = _run_shared(list(problems.values()), None, "ground truth (ok / junk per query)", ks=ks,
                              block_size=block_size, device=device, n_bootstrap=n_bootstrap, seed=seed,
                              ap_definition=ap_definition, pr_levels=pr_levels, backend=backend,
                              relevance="ok[q]; junk[q] removed from the ranking")  # fmt: skip
    return dict(zip(problems, evaluations))


def _check_index_lists(name: str, lists: Sequence[np.ndarray], n_queries: int, n_gallery: int,
                       where: str = "") -> list[np.ndarray]:  # fmt: skip
    """``where`` names the setup in messages (e.g. " of setup 'hard'")."""
    if isinstance(lists, np.ndarray) and lists.dtype != object:
        lists = list(lists)
    if len(lists) != n_queries:
        raise ValueError(f"{name}{where} must have one index array per query ({n_queries}), got {len(lists)}")
    out = []
    for q, items in enumerate(lists):
        arr = np.asarray(items).ravel()
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{name}[{q}]{where} must hold integer gallery indices, got dtype {arr.dtype}")
        arr = arr.astype(np.int64)
        if arr.size and (arr.min() < 0 or arr.max() >= n_gallery):
            raise ValueError(f"{name}[{q}]{where} has an index outside [0, {n_gallery}): "
                             f"{arr[(arr < 0) | (arr >= n_gallery)][:5].tolist()}")  # fmt: skip
        out.append(arr)
    return out


def _check_options(ks, ap_definition, pr_levels, n_bootstrap, block_size):
    return (check_ks(ks), check_ap_definition(ap_definition), check_pr_levels(pr_levels),
            check_non_negative_int("n_bootstrap", n_bootstrap), check_block_size(block_size))  # fmt: skip


def _config(protocol: str, relevance: str, ks, ap_definition, pr_levels, block_size, device, backend, n_bootstrap,
            seed) -> dict:  # fmt: skip
    return {
        "protocol": protocol,
        "relevance": relevance,
        "score": SCORE,
        "ks": list(ks),
        "ap_definition": ap_definition,
        "tie_rule": TIE_RULE,
        "pr_levels": pr_levels,
        "pr_interpolation": "max precision at recall >= r, mean over queries with relevant items",
        "block_size": block_size,
        "device": device,
        "backend": backend,
        "n_bootstrap": n_bootstrap,
        "ci": "95% percentile bootstrap over queries with relevant items" if n_bootstrap else None,
        "seed": seed,
    }


def _run(problem: _engine.RankingProblem, query_labels: np.ndarray | None, protocol: str, *, ks, block_size, device,
         n_bootstrap, seed, ap_definition, pr_levels, backend, relevance: str = "same label") -> Evaluation:  # fmt: skip
    (evaluation,) = _run_shared([problem], query_labels, protocol, ks=ks, block_size=block_size, device=device,
                                n_bootstrap=n_bootstrap, seed=seed, ap_definition=ap_definition, pr_levels=pr_levels,
                                backend=backend, relevance=relevance)  # fmt: skip
    return evaluation


def _run_shared(problems: list[_engine.RankingProblem], query_labels: np.ndarray | None, protocol: str, *, ks,
                block_size, device, n_bootstrap, seed, ap_definition, pr_levels, backend,
                relevance: str) -> list[Evaluation]:  # fmt: skip
    """Evaluate problems that share their queries and database (one score pass); one Evaluation each."""
    ks, ap_definition, pr_levels, n_bootstrap, block_size = _check_options(ks, ap_definition, pr_levels, n_bootstrap,
                                                                           block_size)  # fmt: skip
    backend = _engine.resolve_backend(backend, device)
    first = problems[0]
    _warn_if_not_normalised(first)
    block = block_size or _engine.default_block_size(first.database.shape[0], device, first.queries.shape[0])
    levels = recall_levels(pr_levels)
    started = time.perf_counter()
    n_queries = first.queries.shape[0]
    per_query = [{per_query_key(key): np.empty(n_queries) for key in metric_keys(ks)} for _ in problems]
    pr_sum = [np.zeros(levels.size) for _ in problems]
    for block_results in _engine.iter_shared_blocks(problems, block_size=block, backend=backend, levels=levels,
                                                    k_max=max(ks), device=device):  # fmt: skip
        for i, block_result in enumerate(block_results):
            values = per_query_metrics(block_result.ranks, ks, ap_definition, full=block_result.full)
            for key, value in values.items():
                per_query[i][key][block_result.rows] = value
            pr_sum[i] += np.nansum(block_result.pr_curve, axis=0)
    ranked_s = time.perf_counter() - started
    config = _config(protocol, relevance, ks, ap_definition, pr_levels, block, device, backend, n_bootstrap, seed)
    evaluations = []
    for values, pr_total in zip(per_query, pr_sum):
        ci95 = bootstrap_ci(values, n_bootstrap=n_bootstrap, seed=seed)
        evaluations.append(summarise(values, pr_total, levels.copy(), ks=ks, query_labels=query_labels, ci95=ci95,
                                     config=copy.deepcopy(config)))  # fmt: skip
    logger.info("%s: %d queries x %d items ranked in %.2fs for %d problem(s) (backend %s, block %d), bootstrap in "
                "%.2fs", protocol, n_queries, first.database.shape[0], ranked_s, len(problems), backend, block,
                time.perf_counter() - started - ranked_s)  # fmt: skip
    return evaluations


def _warn_if_not_normalised(problem: _engine.RankingProblem) -> None:
    arrays = [("embeddings", problem.queries)] if problem.queries is problem.database else [
        ("queries", problem.queries), ("database", problem.database)]  # fmt: skip
    for name, x in arrays:
        norms = np.sqrt(np.einsum("ij,ij->i", x[:1024], x[:1024], dtype=np.float64))
        if np.abs(norms - 1.0).max() > 1e-3:
            logger.warning("%s rows are not L2-normalised (norms %.3g..%.3g): scores are dot products, not "
                           "cosine similarities; normalise with x / np.linalg.norm(x, axis=1, keepdims=True)",
                           name, norms.min(), norms.max())  # fmt: skip
