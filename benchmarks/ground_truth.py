"""Benchmark: the per-query ground-truth protocol (Revisited Oxford/Paris style) at R1M scale.

Revisited Oxford/Paris + 1M distractors ranks 70 queries against about a million gallery images,
with per-query ``ok`` and ``junk`` lists. On seeded synthetic data of that shape (unit rows, each
query's ``ok`` items drawn around it, ``junk`` items around it too) this script times

- ``retbench.metrics.evaluate_ground_truth`` (the blockwise counting engine, no bootstrap), and
- the sorting baseline that protocol used before (a stable argsort of every full score row,
  ``retbench.metrics.ranks.relevant_ranks`` on boolean (block x N) masks, as revisitop does),

on the same embeddings, checks that both give the same per-query APs, and reports each one's peak
resident memory beyond the embeddings (``VmHWM``, run in its own subprocess).

It then times the three Revisited setups (each query's ``ok`` split into "easy" and "hard" halves;
easy: ok = easy, junk = junk + hard; medium: ok = easy + hard; hard: ok = hard, junk = junk + easy)
evaluated and searched for the report's retrievals once for all setups
(``evaluate_ground_truth_setups``, ``compute_ground_truth_retrievals``: what ``retbench evaluate
--ground-truth`` runs) against one call per setup, and checks that both give the same numbers.

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


def revisited_like_setups(ok, junk) -> dict:
    """easy / medium / hard (ok, junk) lists from each query's ok list split into halves."""
    easy = [o[: o.size // 2] for o in ok]
    hard = [o[o.size // 2 :] for o in ok]
    return {"easy": (easy, [np.concatenate([j, h]) for j, h in zip(junk, hard)]),
            "medium": (ok, junk),
            "hard": (hard, [np.concatenate([j, e]) for j, e in zip(junk, easy)])}  # fmt: skip


def time_setups(queries, gallery, ok, junk) -> dict:
    """Seconds of the three setups' metrics and retrievals: shared passes vs one call per setup."""
    from retbench.metrics import evaluate_ground_truth, evaluate_ground_truth_setups
    from retbench.report import report_data

    setups = revisited_like_setups(ok, junk)
    q_lines, g_lines = np.arange(len(queries)), np.arange(len(gallery))
    timed = {}
    started = time.perf_counter()
    shared = evaluate_ground_truth_setups(queries, gallery, setups, n_bootstrap=0)
    timed["evaluate_shared_s"] = time.perf_counter() - started
    started = time.perf_counter()
    alone = {name: evaluate_ground_truth(queries, gallery, o, j, n_bootstrap=0) for name, (o, j) in setups.items()}
    timed["evaluate_per_setup_s"] = time.perf_counter() - started
    started = time.perf_counter()
    shared_retrievals = report_data.compute_ground_truth_retrievals(queries, q_lines, gallery, g_lines, setups)
    timed["retrievals_shared_s"] = time.perf_counter() - started
    started = time.perf_counter()
    alone_retrievals = {name: report_data.compute_gallery_retrievals(queries, q_lines, gallery, g_lines, ok=o, junk=j)
                        for name, (o, j) in setups.items()}  # fmt: skip
    timed["retrievals_per_setup_s"] = time.perf_counter() - started
    timed["identical"] = all(
        np.array_equal(shared[n].ap, alone[n].ap, equal_nan=True)
        and all(np.array_equal(shared_retrievals[n][k], alone_retrievals[n][k]) for k in alone_retrievals[n])
        for n in setups)  # fmt: skip
    timed["map"] = {n: shared[n].map for n in setups}
    return timed


def _vm(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def child(args) -> None:
    """Run one method on the synthetic data; print JSON {seconds, peak_beyond_bytes, ap}."""
    from retbench.metrics import evaluate_ground_truth

    queries, gallery, ok, junk = synthetic(args.queries, args.gallery, args.dim)
    if args.method != "sorting":  # warm-up, not timed: load numba's cached kernels
        small = ([o[o < 1000] for o in ok[:2]], [j[j < 1000] for j in junk[:2]])
        evaluate_ground_truth(queries[:2], gallery[:1000], *small, n_bootstrap=0)
        if args.method == "setups":
            time_setups(queries[:2], gallery[:1000], *small)
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = _vm("VmRSS")
    started = time.perf_counter()
    if args.method == "retbench":
        ap = evaluate_ground_truth(queries, gallery, ok, junk, n_bootstrap=0).ap
    elif args.method == "sorting":
        ap = sorting_baseline(queries, gallery, ok, junk)
    else:
        print(json.dumps(time_setups(queries, gallery, ok, junk)))
        return
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "peak_beyond_bytes": _vm("VmHWM") - before, "ap": ap.tolist()}))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=70)
    parser.add_argument("--gallery", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--out", type=Path, help="write <out>.md and <out>.json")
    parser.add_argument("--method", choices=["retbench", "sorting", "setups"], help=argparse.SUPPRESS)  # child process
    args = parser.parse_args(argv)
    if args.method:
        child(args)
        return 0
    results = {}
    for method in ("retbench", "sorting", "setups"):
        command = [sys.executable, __file__, "--method", method, "--queries", str(args.queries), "--gallery",
                   str(args.gallery), "--dim", str(args.dim)]  # fmt: skip
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results[method] = json.loads(output.strip().splitlines()[-1])
        if method != "setups":
            print(f"{method}: {results[method]['seconds']:.2f} s, peak "
                  f"{results[method]['peak_beyond_bytes'] / 2**20:.0f} MiB beyond the embeddings", flush=True)  # fmt: skip
    a, b = np.array(results["retbench"].pop("ap")), np.array(results["sorting"].pop("ap"))
    diff = float(np.nanmax(np.abs(a - b)))
    r, s = results["retbench"], results["sorting"]
    table = ("| queries x gallery (dim) | retbench (s) | sorting every row (s) | speed-up | peak MiB beyond the "
             "embeddings: retbench / sorting | max abs AP diff |\n|---|---|---|---|---|---|\n"
             f"| {args.queries} x {args.gallery:,} ({args.dim}) | {r['seconds']:.2f} | {s['seconds']:.2f} | "
             f"{s['seconds'] / r['seconds']:.1f}x | {r['peak_beyond_bytes'] / 2**20:.0f} / "
             f"{s['peak_beyond_bytes'] / 2**20:.0f} | {diff:.1e} |")  # fmt: skip
    t = results["setups"]
    table += ("\n\nThe three setups (easy / medium / hard), same data:\n\n"
              "| | one pass for all setups (s) | one call per setup (s) | ratio |\n|---|---|---|---|\n"
              f"| metrics | {t['evaluate_shared_s']:.2f} | {t['evaluate_per_setup_s']:.2f} | "
              f"{t['evaluate_per_setup_s'] / t['evaluate_shared_s']:.2f}x |\n"
              f"| report retrievals (top 10, worst 5) | {t['retrievals_shared_s']:.2f} | {t['retrievals_per_setup_s']:.2f} | "
              f"{t['retrievals_per_setup_s'] / t['retrievals_shared_s']:.2f}x |\n\n"
              f"Identical results: {t['identical']}.")  # fmt: skip
    print(table)
    if args.out:
        save(args.out, "benchmarks/ground_truth.py", args, table, {"results": results, "max_abs_ap_diff": diff})
    return 0


if __name__ == "__main__":
    sys.exit(main())
