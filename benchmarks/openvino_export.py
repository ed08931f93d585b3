"""What OpenVINO's usage telemetry costs a model export, and that retbench's export sends none.

Exports the same model (random-init, converted to OpenVINO as ``--runtime openvino`` does)
several times, alternating between OpenVINO's telemetry as installed (on unless the user opted
out with ``opt_in_out --opt_out``, or a CI variable is set) and retbench's export, which
switches it off, after one discarded warm-up export of each and with the order alternating.
Counts the telemetry events and the processes forked from threads other than the main one
(each report, the events plus the session's start and end, is sent from a forked process),
after a leave-one-out evaluation has started numba's thread pool, as in a ``retbench evaluate``
run with several encoders. The forked processes are not allowed to send anything: the
benchmark replaces the function they would run with one that returns at once.

    .venv/bin/python benchmarks/openvino_export.py > benchmarks/results/openvino_export.txt
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time

import numpy as np

from retbench.embeddings import openvino_runtime
from retbench.encoders import build_encoder
from retbench.metrics import evaluate


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet34")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    import openvino_telemetry
    from openvino.tools.ovc.telemetry_utils import init_ovc_telemetry
    from openvino_telemetry.backend import backend_ga4

    backend_ga4._send_func = lambda request: None  # the forks still happen; nothing leaves the machine

    events, forks = [], []
    send_event = openvino_telemetry.Telemetry.send_event

    def counted(self, *event, **kwargs):
        if self.consent or kwargs.get("force_send"):
            events.append(event[:2])
        return send_event(self, *event, **kwargs)

    openvino_telemetry.Telemetry.send_event = counted
    os.register_at_fork(before=lambda: forks.append(1) if threading.current_thread() is not threading.main_thread()
                        else None)  # fmt: skip
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6000, 64)).astype(np.float32)
    evaluate(x / np.linalg.norm(x, axis=1, keepdims=True), [str(i % 10) for i in range(6000)], n_bootstrap=0)
    encoder = build_encoder(args.model, random_init=True)
    print(f"# benchmarks/openvino_export.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    print(f"OpenVINO's telemetry consent as installed here: {init_ovc_telemetry().consent}; "
          f"CI={os.environ.get('CI')!r}; load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    variants = {"OpenVINO's telemetry as installed": contextlib.nullcontext,
                "retbench (telemetry off)": openvino_runtime._usage_telemetry_off}  # fmt: skip
    saved = openvino_runtime._usage_telemetry_off
    seconds = {name: [] for name in variants}
    counts = {name: [] for name in variants}
    order = list(variants.items())
    try:
        for round_ in range(args.rounds + 1):  # round 0: warm-up, discarded
            for name, switch in order if round_ % 2 else order[::-1]:
                openvino_runtime._usage_telemetry_off = switch
                events.clear()
                forks.clear()
                started = time.perf_counter()
                with tempfile.TemporaryDirectory() as directory:
                    openvino_runtime.exported_model(encoder, directory)
                elapsed = time.perf_counter() - started
                time.sleep(3.5)  # let the last sends finish (they time out after 3 s) before counting
                if round_ > 0:
                    seconds[name].append(elapsed)
                    counts[name].append((len(events), len(forks)))
    finally:
        openvino_runtime._usage_telemetry_off = saved
    print(f"\n{args.model}, {args.rounds} exports each after a warm-up, in alternating order\n")
    print("| export | seconds (median; all) | telemetry events per export | reports (forks from threads) per export |")
    print("|---|---:|---:|---:|")
    for name in variants:
        all_s = ", ".join(f"{s:.2f}" for s in seconds[name])
        print(f"| {name} | {statistics.median(seconds[name]):.2f} ({all_s}) | "
              f"{'/'.join(str(e) for e, _ in counts[name])} | {'/'.join(str(f) for _, f in counts[name])} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
