"""Evaluation on CUDA (issue 3): ``retbench.metrics.evaluate(device="cuda")`` against the CPU path.

On the same seeded clustered embeddings as ``benchmarks/evaluate.py`` (512-d), for each size it
times the CUDA torch path and the CPU numba path in one process, and checks that every query's AP
agrees (max abs difference; float32 scores computed by different BLAS libraries may flip near-ties)
and that the mAPs agree. At the smallest size it also times the seed's loop (``average_precision_score``
once per query on float64 scores) when scikit-learn is installed, for the ratio.

    python benchmarks/gpu_evaluate.py --sizes 5823 20000 100000 --json OUT.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaluate import SIZES, clustered_embeddings, seed_loop  # noqa: E402  (the same data and seed loop)


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    import torch

    from retbench.metrics import evaluate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--device", default="cuda", help="the accelerated path (cpu: a smoke test of this script)")
    args = parser.parse_args(argv)
    if args.device != "cpu" and not torch.cuda.is_available():
        print("no CUDA GPU: nothing to measure")
        return 1
    gpu = torch.cuda.get_device_name(0) if args.device != "cpu" else None
    info = {"gpu": gpu, "torch": torch.__version__, "cpu_count": os.cpu_count(), "device": args.device}
    print(json.dumps(info))
    rows = []
    for n in args.sizes:
        x, labels = clustered_embeddings(n, SIZES.get(n, max(2, n // 1000)))
        evaluate(x[:2048], labels[:2048], n_bootstrap=0, device=args.device)  # warm-up: CUDA context, kernels
        evaluate(x[:2048], labels[:2048], n_bootstrap=0, device="cpu")  # warm-up: numba compile / cache
        cuda, cuda_s = timed(evaluate, x, labels, n_bootstrap=0, device=args.device)
        cpu, cpu_s = timed(evaluate, x, labels, n_bootstrap=0, device="cpu")
        row = {"n": n, "cuda_s": cuda_s, "cpu_numba_s": cpu_s, "cpu_over_cuda": cpu_s / cuda_s,
               "map_cuda": cuda.map, "map_cpu": cpu.map, "map_diff": abs(cuda.map - cpu.map),
               "max_ap_diff": float(np.nanmax(np.abs(cuda.ap - cpu.ap)))}  # fmt: skip
        if n <= 6000:
            try:
                ap_seed, seed_s, _ = seed_loop(x, labels, np.arange(n))
                row["seed_loop_s"] = seed_s
                row["seed_over_cuda"] = seed_s / cuda_s
                row["max_ap_diff_seed"] = float(np.nanmax(np.abs(ap_seed - cuda.ap)))
            except ImportError:
                row["seed_loop_s"] = None
        rows.append(row)
        print(json.dumps(row))
    if args.json:
        args.json.write_text(json.dumps({"environment": info, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
