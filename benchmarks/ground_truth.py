"""Benchmark: the per-query ground-truth protocol (Revisited Oxford/Paris style) at R1M scale.

Revisited Oxford/Paris + 1M distractors ranks 70 queries against about a million gallery images,
with per-query ``ok`` and ``junk`` lists. On seeded synthetic data of that shape (unit rows, each
query's ``ok`` items drawn around it, ``junk`` items around it too) this script times

- ``retbench.metrics.evaluate_ground_truth`` (the blockwise counting engine, no bootstrap), and
- the sorting baseline that protocol used before (a stable argsort of every full score row,
  ``retbench.metrics.ranks.relevant_ranks`` on boolean (block x N) masks, as revisitop does),

on the same embeddings, checks that both give the same per-query APs, and reports each one's peak
resident memory beyond the embeddings (``VmHWM``, run in its own subprocess).

Usage (what BENCHMARKS.md reports):

    .venv/bin/python benchmarks/ground_truth.py --gallery 1000000 --out benchmarks/results/ground_truth
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _results import save  # noqa: E402


def synthetic(n_queries: int, n_gallery: int, dim: int, seed: int = 0):
    """Unit float32 queries / gallery; per query 20-300 ok and 10-100 junk items that lie near it."""
    rng = np.random.default_rng(seed)
    queries = rng.standard_normal((n_queries, dim), dtype=np.float32)
    gallery = np.empty((n_gallery, dim), dtype=np.float32)
    for start in range(0, n_gallery, 65536):
        stop = min(start + 65536, n_gallery)
        gallery[start:stop] = rng.standard_normal((stop - start, dim), dtype=np.float32)
    ok, junk = [], []
    for q in range(n_queries):
        picked = rng.choice(n_gallery, int(rng.integers(20, 300)) + int(rng.integers(10, 100)), replace=False)
        n_ok = int(rng.integers(20, 300))
        ok.append(np.sort(picked[:n_ok]))
        junk.append(np.sort(picked[n_ok:]))
        weight = rng.uniform(0.5, 2.0, picked.size).astype(np.float32)[:, None]
        gallery[picked] += weight * queries[q] / np.linalg.norm(queries[q])
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    return queries, gallery, ok, junk


def sorting_baseline(queries, gallery, ok, junk, block: int = 16) -> np.ndarray:
    """Per-query sklearn AP by sorting every full row (the protocol's former implementation)."""
    from retbench.metrics.average_precision import ap_from_ranks
    from retbench.metrics.ranks import relevant_ranks

    aps = []
    for start in range(0, len(queries), block):
        stop = min(start + block, len(queries))
        scores = queries[start:stop] @ gallery.T
        relevant = np.zeros(scores.shape, dtype=bool)
        ranked = np.ones(scores.shape, dtype=bool)
        for row, q in enumerate(range(start, stop)):
            relevant[row, ok[q]] = True
            ranked[row, junk[q]] = False
        aps.append(ap_from_ranks(relevant_ranks(relevant & ranked, scores, ranked), "sklearn"))
    return np.concatenate(aps)


def _vm(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def child(args) -> None:
    """Run one method on the synthetic data; print JSON {seconds, peak_beyond_bytes, ap}."""
    from retbench.metrics import evaluate_ground_truth

    queries, gallery, ok, junk = synthetic(args.queries, args.gallery, args.dim)
    if args.method == "retbench":  # warm-up, not timed: load numba's cached kernels
        evaluate_ground_truth(queries[:2], gallery[:1000], [o[o < 1000] for o in ok[:2]],
                              [j[j < 1000] for j in junk[:2]], n_bootstrap=0)  # fmt: skip
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = _vm("VmRSS")
    started = time.perf_counter()
    if args.method == "retbench":
        ap = evaluate_ground_truth(queries, gallery, ok, junk, n_bootstrap=0).ap
    else:
        ap = sorting_baseline(queries, gallery, ok, junk)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "peak_beyond_bytes": _vm("VmHWM") - before, "ap": ap.tolist()}))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=70)
    parser.add_argument("--gallery", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--out", type=Path, help="write <out>.md and <out>.json")
    parser.add_argument("--method", choices=["retbench", "sorting"], help=argparse.SUPPRESS)  # child process
    args = parser.parse_args(argv)
    if args.method:
        child(args)
        return 0
    results = {}
    for method in ("retbench", "sorting"):
        command = [sys.executable, __file__, "--method", method, "--queries", str(args.queries), "--gallery",
                   str(args.gallery), "--dim", str(args.dim)]  # fmt: skip
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results[method] = json.loads(output.strip().splitlines()[-1])
        print(f"{method}: {results[method]['seconds']:.2f} s, peak {results[method]['peak_beyond_bytes'] / 2**20:.0f} MiB "
              "beyond the embeddings", flush=True)  # fmt: skip
    a, b = np.array(results["retbench"].pop("ap")), np.array(results["sorting"].pop("ap"))
    diff = float(np.nanmax(np.abs(a - b)))
    r, s = results["retbench"], results["sorting"]
    table = ("| queries x gallery (dim) | retbench (s) | sorting every row (s) | speed-up | peak MiB beyond the "
             "embeddings: retbench / sorting | max abs AP diff |\n|---|---|---|---|---|---|\n"
             f"| {args.queries} x {args.gallery:,} ({args.dim}) | {r['seconds']:.2f} | {s['seconds']:.2f} | "
             f"{s['seconds'] / r['seconds']:.1f}x | {r['peak_beyond_bytes'] / 2**20:.0f} / "
             f"{s['peak_beyond_bytes'] / 2**20:.0f} | {diff:.1e} |")  # fmt: skip
    print(table)
    if args.out:
        save(args.out, "benchmarks/ground_truth.py", args, table, {"results": results, "max_abs_ap_diff": diff})
    return 0


if __name__ == "__main__":
    sys.exit(main())
