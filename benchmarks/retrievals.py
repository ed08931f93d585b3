"""Benchmark: the report's retrieval lists (every query's top-k and worst-k, leave-one-out, exact).

``retbench.report.report_data.compute_retrievals`` finds, for every query, its best and worst
items (TOP_K / WORST_K) (what the galleries of report.html and the PNG grids show) with one blockwise pass
(``retbench.search.top_and_worst``). On the seeded clustered 512-d embeddings of
``benchmarks/evaluate.py`` this script times it and the block score products alone (the floor of
any exact search on this machine), and checks a sample of queries against a full stable sort.

Usage (what BENCHMARKS.md reports):

    .venv/bin/python benchmarks/retrievals.py --n 20000 --out benchmarks/results/retrievals
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _results import save  # noqa: E402
from evaluate import SIZES, clustered_embeddings  # noqa: E402


def main(argv=None) -> int:
    from retbench.report import report_data

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20000, choices=sorted(SIZES))
    parser.add_argument("--out", type=Path, help="write <out>.md and <out>.json")
    args = parser.parse_args(argv)
    x, labels = clustered_embeddings(args.n, SIZES[args.n])
    lines = np.arange(args.n)
    report_data.compute_retrievals(x[:200], lines[:200], labels=labels)  # warm-up: numba's cached kernel
    started = time.perf_counter()
    saved = report_data.compute_retrievals(x, lines, labels=labels)
    seconds = time.perf_counter() - started
    from retbench.search.exact import _BLOCK_ELEMENTS

    rows = max(1, min(args.n, max(64, _BLOCK_ELEMENTS // args.n)))  # the search's own query blocks
    started = time.perf_counter()
    for q0 in range(0, args.n, rows):  # products only
        x[q0 : q0 + rows] @ x.T
    products = time.perf_counter() - started
    rng = np.random.default_rng(0)
    sample = rng.choice(args.n, 50, replace=False)
    scores = x[sample] @ x.T
    scores[np.arange(50), sample] = np.nan  # the query itself is left out
    k_top, k_worst = saved["top_index"].shape[1], saved["worst_index"].shape[1]
    order = np.argsort(-np.nan_to_num(scores, nan=-np.inf), axis=1, kind="stable")[:, :k_top]
    worst = np.argsort(np.nan_to_num(scores, nan=np.inf), axis=1, kind="stable")[:, :k_worst]
    exact = bool((saved["top_index"][sample] == order).all() and (saved["worst_index"][sample] == worst).all())
    table = (f"| N (512-d) | top-{k_top} + worst-{k_worst} of every query (s) | score products alone (s) | equal to a full stable "
             f"sort (50 sampled queries) |\n|---|---|---|---|\n| {args.n:,} | {seconds:.2f} | {products:.2f} | "
             f"{'yes' if exact else 'NO'} |")  # fmt: skip
    print(table)
    if args.out:
        save(args.out, "benchmarks/retrievals.py", args, table,
             {"seconds": seconds, "products_seconds": products, "equal_to_full_sort": exact})
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
