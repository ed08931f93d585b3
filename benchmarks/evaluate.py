"""Benchmark: retbench.metrics.evaluate against the "seed's way" and other libraries.

The seed's way is a Python loop calling ``sklearn.metrics.average_precision_score`` once per query
on float64 scores (computed block by block, leave-one-out). On the same seeded, clustered, unit
512-d embeddings this script times

- the seed loop (all queries, or a seeded random subset extrapolated to all when ``--seed-subset``
  is given: stated in the table),
- ``retbench.metrics.evaluate`` without CIs (``n_bootstrap=0``, the speed comparison) and with the
  default 1,000-resample CIs,
- torchmetrics ``RetrievalMAP`` on the N x (N - 1) pairs, with shifted scores (score + 2: it treats
  a relevant item scored <= 0 as a miss) and unshifted, where that fits in memory,
- pytorch-metric-learning ``AccuracyCalculator`` (``mean_average_precision`` with k = all), where
  that fits in memory,

and, for the largest size, runs retbench alone in a subprocess that reports its peak resident
memory beyond the embeddings (``VmHWM`` after resetting it, minus ``VmRSS`` before ``evaluate``).

Usage (what BENCHMARKS.md reports):

    .venv/bin/python benchmarks/evaluate.py --out benchmarks/results/evaluate

Prints a markdown table and writes ``<out>.md`` and ``<out>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DIM = 512
#: (N, number of classes) of the three benchmark sizes.
SIZES = {5823: 15, 20000: 20, 100000: 100}
#: noise of the clustered embeddings: gives a mean AP of roughly 0.6-0.9 (realistic, many overlaps).
NOISE = 2.5
#: memory the N x N libraries may use before they are skipped (they materialise O(N^2) tensors).
DENSE_LIMIT_BYTES = 6 * 2**30


def clustered_embeddings(n: int, n_classes: int, seed: int = 0, noise: float = NOISE) -> tuple[np.ndarray, list[str]]:
    """(n, 512) float32 unit rows: a random unit centre per class plus isotropic noise; seeded."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n)
    centres = rng.standard_normal((n_classes, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 8192):  # chunks: no large float64 temporaries
        stop = min(start + 8192, n)
        noise_rows = rng.standard_normal((stop - start, DIM), dtype=np.float32) * np.float32(noise / np.sqrt(DIM))
        x[start:stop] = centres[labels[start:stop]] + noise_rows
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, [f"class{label:03d}" for label in labels]


def seed_loop(x: np.ndarray, labels: list[str], queries: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The seed's way on ``queries``: float64 scores, one sklearn call per query.

    Returns (ap, wall seconds, CPU seconds of this process).
    """
    from sklearn.metrics import average_precision_score

    lab = np.asarray(labels)
    x64 = x.astype(np.float64)
    aps = np.empty(queries.size)
    cpu_started = time.process_time()
    started = time.perf_counter()
    for start in range(0, queries.size, 256):
        block = queries[start : start + 256]
        scores = x64[block] @ x64.T
        for row, q in enumerate(block):
            others = np.arange(lab.size) != q
            relevant = lab[others] == lab[q]
            aps[start + row] = average_precision_score(relevant, scores[row, others]) if relevant.any() else np.nan
    return aps, time.perf_counter() - started, time.process_time() - cpu_started


def time_retbench(x: np.ndarray, labels: list[str], n_bootstrap: int):
    """(evaluation, wall seconds, CPU seconds of this process, all threads)."""
    from retbench.metrics import evaluate

    cpu_started = time.process_time()
    started = time.perf_counter()
    evaluation = evaluate(x, labels, n_bootstrap=n_bootstrap)
    return evaluation, time.perf_counter() - started, time.process_time() - cpu_started


def time_torchmetrics(x: np.ndarray, labels: list[str], shift: float):
    """torchmetrics RetrievalMAP over all (query, other item) pairs; None when it would not fit."""
    n = x.shape[0]
    if n * n * 30 > DENSE_LIMIT_BYTES:  # preds, target, indexes and its sorting copies
        return None
    import torch
    from torchmetrics.retrieval import RetrievalMAP

    lab = np.asarray(labels)
    started = time.perf_counter()
    scores = torch.from_numpy(x) @ torch.from_numpy(x).T
    off_diagonal = ~torch.eye(n, dtype=torch.bool)
    metric = RetrievalMAP(empty_target_action="skip")
    codes = torch.from_numpy(np.unique(lab, return_inverse=True)[1])
    target = (codes[:, None] == codes[None, :])[off_diagonal]
    indexes = torch.arange(n)[:, None].expand(n, n)[off_diagonal]
    metric.update(scores[off_diagonal] + shift, target, indexes=indexes)
    value = float(metric.compute())
    return value, time.perf_counter() - started


def time_pml(x: np.ndarray, labels: list[str]):
    """pytorch-metric-learning AccuracyCalculator mean_average_precision with k = all; None if too big."""
    n = x.shape[0]
    if n * n * 48 > DENSE_LIMIT_BYTES:  # k = N - 1 neighbours: distances, indices, labels, float64 work arrays
        return None
    import torch
    from pytorch_metric_learning.distances import CosineSimilarity
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
    from pytorch_metric_learning.utils.inference import CustomKNN

    codes = np.unique(np.asarray(labels), return_inverse=True)[1]
    calculator = AccuracyCalculator(include=("mean_average_precision",), k=None, device=torch.device("cpu"),
                                    knn_func=CustomKNN(CosineSimilarity(), batch_size=1024))  # fmt: skip
    started = time.perf_counter()
    value = calculator.get_accuracy(torch.from_numpy(x), torch.from_numpy(codes))["mean_average_precision"]
    return float(value), time.perf_counter() - started


def time_products(n: int, n_classes: int) -> float:
    """Seconds for the score matrix products alone (numpy float32, retbench's default block size): the
    part of ``evaluate`` that no ranking algorithm avoids, a floor set by this machine's BLAS."""
    from retbench.metrics._engine import default_block_size

    x, _ = clustered_embeddings(n, n_classes)
    block = default_block_size(n)
    out = np.empty((block, n), dtype=np.float32)
    started = time.perf_counter()
    for start in range(0, n, block):
        rows = x[start : start + block]
        np.matmul(rows, x.T, out=out[: rows.shape[0]])
    return time.perf_counter() - started


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_child(n: int, n_classes: int, n_bootstrap: int) -> None:
    """Run in a subprocess: evaluate once and print JSON with its time and peak RSS beyond the embeddings."""
    from retbench.metrics import evaluate

    x, labels = clustered_embeddings(n, n_classes)
    evaluate(x[:256], labels[:256], n_bootstrap=0)  # warm-up: loads the compiled kernels
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = _status_kib("VmRSS")
    cpu_started = time.process_time()
    started = time.perf_counter()
    evaluation = evaluate(x, labels, n_bootstrap=n_bootstrap)
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    peak = _status_kib("VmHWM")
    print(json.dumps({"n": n, "seconds": seconds, "cpu_seconds": cpu_seconds, "map": evaluation.map,
                      "rss_before_mib": before / 1024,
                      "peak_rss_mib": peak / 1024, "peak_delta_mib": (peak - before) / 1024,
                      "embeddings_mib": x.nbytes / 2**20, "n_bootstrap": n_bootstrap,
                      "config": evaluation.config}))  # fmt: skip


def run_memory_child(n: int, n_classes: int, n_bootstrap: int) -> dict:
    command = [sys.executable, __file__, "--child", str(n), str(n_classes), str(n_bootstrap)]
    out = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def environment() -> dict:
    from threadpoolctl import threadpool_info

    info = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "load_average": os.getloadavg(), "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
            "threadpoolctl": [{k: v for k, v in pool.items() if k != "filepath"} for pool in threadpool_info()]}  # fmt: skip
    try:
        cpu = [line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")]
        info["cpu"] = cpu[0].split(":", 1)[1].strip() if cpu else None
    except OSError:
        info["cpu"] = None
    try:
        import numba

        info["numba"] = {"version": numba.__version__, "threads": numba.get_num_threads()}
    except ImportError:
        info["numba"] = None
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="N values (from 5823 20000 100000)")
    parser.add_argument("--seed-subset", type=int, default=0,
                        help="time the seed loop on this many seeded random queries and extrapolate (0: all)")
    parser.add_argument("--out", type=Path, default=None, help="write <out>.md and <out>.json")
    parser.add_argument("--child", nargs=3, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        memory_child(*args.child)
        return 0

    from retbench.metrics import evaluate

    env = environment()
    print("threadpoolctl:", json.dumps(env["threadpoolctl"], indent=1))
    print("numba:", env["numba"], "| cpu:", env["cpu"], "| load average at start:", env["load_average"])
    evaluate(*clustered_embeddings(300, 3), n_bootstrap=0)  # warm-up (numba kernels are compiled/cached)
    rows = []
    for n in args.sizes:
        n_classes = SIZES.get(n, 10)
        row: dict = {"n": n, "classes": n_classes}
        row["products_s"] = time_products(n, n_classes)
        row["gemm_gflops"] = 2.0 * n * n * DIM / row["products_s"] / 1e9
        if n >= 50000:  # retbench only, in a subprocess measuring peak memory
            child = run_memory_child(n, n_classes, 0)
            child_ci = run_memory_child(n, n_classes, 1000)
            row.update(map=child["map"], retbench_s=child["seconds"], retbench_ci_s=child_ci["seconds"],
                       retbench_cpu_s=child["cpu_seconds"],
                       peak_delta_mib=child["peak_delta_mib"], peak_delta_ci_mib=child_ci["peak_delta_mib"],
                       embeddings_mib=child["embeddings_mib"])  # fmt: skip
            rows.append(row)
            print(json.dumps(row))
            continue
        x, labels = clustered_embeddings(n, n_classes)
        evaluation, row["retbench_s"], row["retbench_cpu_s"] = time_retbench(x, labels, 0)
        evaluation_ci, row["retbench_ci_s"], _ = time_retbench(x, labels, 1000)
        row["map"] = evaluation.map
        if args.seed_subset and args.seed_subset < n:
            queries = np.sort(np.random.default_rng(0).choice(n, args.seed_subset, replace=False))
        else:
            queries = np.arange(n)
        aps, seconds, cpu_seconds = seed_loop(x, labels, queries)
        row["seed_queries"] = int(queries.size)
        row["seed_s"] = seconds * n / queries.size
        row["seed_cpu_s"] = cpu_seconds * n / queries.size
        row["speedup"] = row["seed_s"] / row["retbench_s"]
        row["cpu_ratio"] = row["seed_cpu_s"] / row["retbench_cpu_s"]
        row["max_ap_diff"] = float(np.nanmax(np.abs(aps - evaluation.ap[queries])))
        if queries.size == n:
            row["map_diff"] = abs(float(np.nanmean(aps)) - evaluation.map)
        for shift, key in ((2.0, "torchmetrics_shifted"), (0.0, "torchmetrics_unshifted")):
            result = time_torchmetrics(x, labels, shift)
            if result is not None:
                row[key + "_map_diff"] = abs(result[0] - evaluation.map)
                row[key + "_s"] = result[1]
        result = time_pml(x, labels)
        if result is not None:
            row["pml_map_diff"], row["pml_s"] = abs(result[0] - evaluation.map), result[1]
        assert evaluation_ci.map == evaluation.map
        rows.append(row)
        print(json.dumps(row))
    env["load_average_end"] = os.getloadavg()
    table = markdown(rows)
    print()
    print(table)
    print("load average at end:", env["load_average_end"])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".md").write_text(table + "\n")
        args.out.with_suffix(".json").write_text(json.dumps({"rows": rows, "environment": env}, indent=1) + "\n")
    return 0


def _fmt(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def markdown(rows: list[dict]) -> str:
    header = ("| N | classes | mAP | seed loop (s) | retbench (s) | speed-up | CPU s: seed / retbench (ratio) "
              "| retbench + CIs (s) | products alone (s, GFLOP/s) | max abs AP diff "
              "| mAP diff | torchmetrics +2 (s / mAP diff) | torchmetrics raw (s / mAP diff) | pml (s / mAP diff) "
              "| peak RSS beyond embeddings (MiB) |")  # fmt: skip
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for r in rows:
        seed = _fmt(r.get("seed_s"), ".1f")
        if r.get("seed_queries") and r["seed_queries"] < r["n"]:
            seed += f" (extrapolated from {r['seed_queries']} queries)"

        def pair(key: str) -> str:
            if r.get(key + "_s") is None:
                return "not run (N x N does not fit)" if "seed_s" in r else "—"
            return f"{r[key + '_s']:.1f} / {r[key + '_map_diff']:.1e}"

        cpu = f"{_fmt(r.get('seed_cpu_s'), '.1f')} / {r['retbench_cpu_s']:.2f}"
        if r.get("cpu_ratio"):
            cpu += f" ({r['cpu_ratio']:.1f}x)"
        memory = _fmt(r.get("peak_delta_mib"), ".0f")
        if r.get("peak_delta_ci_mib") is not None:
            memory += f" ({r['peak_delta_ci_mib']:.0f} with CIs; embeddings {r['embeddings_mib']:.0f})"
        lines.append(
            f"| {r['n']:,} | {r['classes']} | {r['map']:.4f} | {seed} | {r['retbench_s']:.2f} | "
            f"{_fmt(r.get('speedup'), '.1f')}{'x' if r.get('speedup') else ''} | {cpu} | {r['retbench_ci_s']:.2f} | "
            f"{_fmt(r.get('products_s'), '.2f')} ({_fmt(r.get('gemm_gflops'), '.0f')}) | "
            f"{_fmt(r.get('max_ap_diff'), '.1e')} | {_fmt(r.get('map_diff'), '.1e')} | {pair('torchmetrics_shifted')} | "
            f"{pair('torchmetrics_unshifted')} | {pair('pml')} | {memory} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
