"""Extraction speed: the naive per-image loop vs retbench's pipeline in each mode, in ONE process run.

For each model, on the same images:

1. the naive loop every seed/student implementation uses: PIL open, the reference
   torchvision transform (Resize, CenterCrop, ToTensor, Normalize), the model in eval mode
   and inference mode on a batch of one, eager fp32;
2. ``retbench.embeddings.extract`` end to end in each mode (decode + model + L2 norm;
   a mode's one-time setup, such as the OpenVINO export and compile, is excluded and shown apart);
3. forward-only throughput of the same mode on pre-decoded uint8 batches.

It reports img/s, the ratio to the naive loop, end-to-end / forward-only, and the
largest cosine deviation (1 - cos) of each mode's features from the naive loop's. Every
measurement is repeated ``--rounds`` times, interleaved, and the best is kept (other
processes on a shared machine only ever slow a run down). Compare numbers only within one run.

    .venv/bin/python benchmarks/extract.py --models resnet34 dinov2_vits14 clip_vitb32 --n 256
    .venv/bin/python benchmarks/extract.py --device cuda --modes fp32-eager fp32 fp16 fp16-eager
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from retbench.datasets import Dataset, load_dataset
from retbench.embeddings import extraction
from retbench.embeddings.loader import ImageReader
from retbench.embeddings.runtimes import open_forward, resolve_runtime
from retbench.encoders import build_encoder

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATASET = REPO.parent / "shared" / "data" / "clothing10"

# name -> extract() options. channels_last None = retbench's default (on for CNNs).
MODES = {
    "fp32-eager": dict(precision="fp32", runtime="torch", channels_last=False),
    "fp32": dict(precision="fp32", runtime="torch", channels_last=None),
    "bf16-eager": dict(precision="bf16", runtime="torch", channels_last=False),
    "bf16": dict(precision="bf16", runtime="torch", channels_last=None),
    "fp16-eager": dict(precision="fp16", runtime="torch", channels_last=False),
    "fp16": dict(precision="fp16", runtime="torch", channels_last=None),
    "ov-fp32": dict(precision="fp32", runtime="openvino"),
    "ov-bf16": dict(precision="bf16", runtime="openvino"),
    "fp32-reduced": dict(precision="fp32", runtime="torch", channels_last=None, decode="reduced"),
    "ov-bf16-reduced": dict(precision="bf16", runtime="openvino", decode="reduced"),
    "fp32-fast": dict(precision="fp32", runtime="torch", channels_last=None, decode="fast"),
    "ov-bf16-fast": dict(precision="bf16", runtime="openvino", decode="fast"),
    "fp16-fast": dict(precision="fp16", runtime="torch", channels_last=None, decode="fast"),
    # OpenVINO with a stream per core or so (PERFORMANCE_HINT THROUGHPUT) instead of retbench's LATENCY (one stream)
    "ov-fp32-throughput": dict(precision="fp32", runtime="openvino", hint="THROUGHPUT"),
    "ov-bf16-throughput": dict(precision="bf16", runtime="openvino", hint="THROUGHPUT"),
}
# --pipelines: how images are decoded while the model runs, (parallel, workers, prefetch); the first is retbench's default on a 2-core CPU
PIPELINES = {
    "threads-2-ahead0": ("threads", 2, 0),
    "threads-2-ahead1": ("threads", 2, 1),
    "threads-1-ahead1": ("threads", 1, 1),
    "processes-1": ("processes", 1, 2),
    "processes-2": ("processes", 2, 2),
    "inline": ("threads", 0, 0),
}
DEFAULT_MODES = {"cpu": ["fp32-eager", "fp32", "bf16", "ov-fp32", "ov-bf16"],
                 "cuda": ["fp32-eager", "fp32", "fp16-eager", "fp16", "bf16"]}  # fmt: skip


def reference_transform(config):
    """The reference libraries' eval transform for a PreprocessConfig (what the naive loop uses)."""
    from torchvision import transforms

    steps = [transforms.Resize(list(config.resize) if isinstance(config.resize, tuple) else config.resize,
                               interpolation=transforms.InterpolationMode(config.interpolation))]  # fmt: skip
    if config.crop is not None:
        steps.append(transforms.CenterCrop(list(config.crop)))
    steps += [transforms.ToTensor(), transforms.Normalize(config.mean, config.std)]
    return transforms.Compose(steps)


def naive_loop(dataset: Dataset, encoder, device: torch.device) -> tuple[float, np.ndarray]:
    """The seed's way: one image at a time. Returns (img/s, (N, D) unit features)."""
    from PIL import Image

    model, transform = encoder.model.eval(), reference_transform(encoder.preprocess)
    rows = []
    started = None
    with torch.inference_mode():
        for i in range(-2, len(dataset)):  # two warm-up images, not timed
            with Image.open(dataset.image_path(max(i, 0))) as image:
                x = transform(image.convert("RGB")).unsqueeze(0).to(device)
            features = model(x).float().cpu()
            if i == -1:
                started = time.perf_counter()
            if i >= 0:
                rows.append(features)
    rate = len(dataset) / (time.perf_counter() - started)
    return rate, torch.nn.functional.normalize(torch.cat(rows).double(), dim=1).numpy()


@contextlib.contextmanager
def settings(mode: dict, pipeline: tuple[str, int, int] | None = None):
    """Apply a mode's benchmark-only settings (OpenVINO hint, decoding pipeline); yield extract() options."""
    from retbench.embeddings import openvino_runtime

    options = {k: v for k, v in mode.items() if k != "hint"}
    saved_hint, saved_pipeline = openvino_runtime.PERFORMANCE_HINT, extraction.input_pipeline
    openvino_runtime.PERFORMANCE_HINT = mode.get("hint", saved_hint)
    if pipeline is not None:
        extraction.input_pipeline = lambda device, num_workers: pipeline
    try:
        yield options
    finally:
        openvino_runtime.PERFORMANCE_HINT, extraction.input_pipeline = saved_hint, saved_pipeline


def end_to_end(dataset: Dataset, encoder, mode: dict, batch_size: int, export_dir: Path,
               pipeline: tuple[str, int, int] | None = None) -> tuple[float, float, np.ndarray]:  # fmt: skip
    """retbench extract in one mode: (img/s without setup, setup seconds, features)."""
    with settings(mode, pipeline) as options:
        extraction.extract(dataset.subset(list(range(min(batch_size, len(dataset))))), encoder, batch_size=batch_size,
                           export_dir=export_dir, **options)  # warm-up: export, compile, first-call costs  # fmt: skip
        result = extraction.extract(dataset, encoder, batch_size=batch_size, export_dir=export_dir, **options)
    return result.timings["images_per_s"], result.timings["setup_s"], result.vectors


def forward_only(batches: list[torch.Tensor], encoder, mode: dict, device: torch.device, export_dir: Path) -> float:
    """img/s of the mode's forward (normalisation included) on pre-decoded uint8 batches."""
    with settings(mode) as options:
        config = resolve_runtime(encoder, device, **{k: v for k, v in options.items() if k != "decode"})
        with open_forward(encoder, config, export_dir=export_dir) as forward:
            forward(batches[0]).cpu()
            started = time.perf_counter()
            for pixels in batches:
                forward(pixels).cpu()
            return sum(len(b) for b in batches) / (time.perf_counter() - started)


def predecode(dataset: Dataset, encoder, batch_size: int, decode: str, device: torch.device) -> list[torch.Tensor]:
    """Pre-decoded uint8 batches (pinned for CUDA, as the pipeline's are)."""
    from concurrent.futures import ThreadPoolExecutor

    reader = ImageReader(dataset, encoder.preprocess, decode)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        pixels = [item[1] for item in pool.map(reader, range(len(dataset)))]
    batches = [torch.stack(pixels[i : i + batch_size]) for i in range(0, len(pixels), batch_size)]
    return [b.pin_memory() for b in batches] if device.type == "cuda" else batches


def sample(dataset: Dataset, n: int, seed: int) -> Dataset:
    """A seeded subset of n images (cycling through the list when n exceeds it)."""
    rng = np.random.default_rng(seed)
    rows = rng.permutation(len(dataset)).tolist()
    rows = (rows * (n // len(rows) + 1))[:n]
    return dataset.subset(sorted(rows))


def environment() -> dict:
    try:
        from threadpoolctl import threadpool_info

        pools = [{k: p.get(k) for k in ("user_api", "internal_api", "num_threads", "version", "architecture")}
                 for p in threadpool_info()]  # fmt: skip
    except ImportError:
        pools = "threadpoolctl not installed"
    info = {"python": platform.python_version(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "machine": platform.processor() or platform.machine(), "threadpools": pools}  # fmt: skip
    try:
        import openvino

        info["openvino"] = openvino.__version__
    except ImportError:
        info["openvino"] = None
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
    return info


def load() -> str:
    return "load average %.2f %.2f %.2f" % os.getloadavg()


def cpu_pressure() -> float | None:
    """Share of the last 10 s in which runnable tasks waited for a CPU (Linux PSI), in percent."""
    try:
        return float(Path("/proc/pressure/cpu").read_text().split()[1].split("=")[1])
    except (OSError, IndexError, ValueError):
        return None


def wait_for_quiet(max_wait: float, threshold: float = 5.0) -> None:
    """On a shared machine, wait (up to max_wait s) until other processes leave the CPUs idle."""
    deadline = time.monotonic() + max_wait
    while time.monotonic() < deadline:
        pressure = cpu_pressure()
        if pressure is None or pressure < threshold:
            return
        time.sleep(2)


def deviation(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(max, mean) of 1 - cos between matching rows of two (N, D) matrices (cosine in float64)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    d = np.maximum(1.0 - cos, 0.0)
    return float(d.max()), float(d.mean())


def _modes(encoder, names: list[str], device: torch.device, spec: str) -> list[tuple[str, dict]]:
    """The modes to run for this encoder: those valid on the device, each distinct configuration once."""
    modes, seen = [], set()
    for name in names:
        if name not in MODES:
            raise SystemExit(f"unknown mode {name!r}; known: {', '.join(MODES)}")
        mode = MODES[name]
        options = {k: v for k, v in mode.items() if k not in ("decode", "hint")}
        try:
            config = resolve_runtime(encoder, device, **options)
        except Exception as exc:  # e.g. fp16 on the CPU, OpenVINO on CUDA
            print(f"  skip {name}: {exc}")
            continue
        if config.runtime == "openvino":
            try:
                import openvino  # noqa: F401
            except ImportError:
                print(f"  skip {name}: OpenVINO is not installed")
                continue
        resolved = (config, mode.get("decode", "full"), mode.get("hint"))
        if resolved in seen:
            print(f"  skip {name}: same configuration as an earlier mode for {spec}")
            continue
        seen.add(resolved)
        modes.append((name, mode))
    return modes


def bench_model(spec: str, args, device: torch.device, export_dir: Path) -> dict:
    encoder = build_encoder(spec, random_init=not args.pretrained, device=str(device))
    dataset = sample(load_dataset(args.dataset), args.n, args.seed)
    print(f"\n## {spec} ({'pretrained' if args.pretrained else 'random-init'}), {len(dataset)} images of "
          f"{args.dataset.name}, batch {args.batch_size}, device {device}; {load()}", flush=True)  # fmt: skip
    modes = _modes(encoder, args.modes, device, spec)
    pipelines = [(name, PIPELINES[name]) for name in args.pipelines or []]
    decodes = {m.get("decode", "full") for _, m in modes}
    batches = {d: predecode(dataset, encoder, args.batch_size, d, device) for d in decodes}
    best: dict[str, dict] = {"naive": {"e2e": 0.0}}
    naive_set = dataset.subset(list(range(min(args.naive_n or len(dataset), len(dataset)))))
    naive_features = None
    for round_ in range(args.rounds):
        wait_for_quiet(args.quiet_wait)
        rate, naive_features = naive_loop(naive_set, encoder, device)
        best["naive"]["e2e"] = max(best["naive"]["e2e"], rate)
        print(f"  round {round_ + 1}: naive {rate:.1f} img/s; {load()}", flush=True)
        for name, mode in modes:
            wait_for_quiet(args.quiet_wait)
            e2e, setup, vectors = end_to_end(dataset, encoder, mode, args.batch_size, export_dir)
            fwd = forward_only(batches[mode.get("decode", "full")], encoder, mode, device, export_dir)
            entry = best.setdefault(name, {"e2e": 0.0, "forward": 0.0})
            entry["e2e"], entry["forward"] = max(entry["e2e"], e2e), max(entry["forward"], fwd)
            entry["setup_s"] = setup
            entry["max_dev"], entry["mean_dev"] = deviation(vectors[: len(naive_set)], naive_features)
            print(f"  round {round_ + 1}: {name} e2e {e2e:.1f} img/s, forward-only {fwd:.1f} img/s", flush=True)
        for name, pipeline in pipelines:  # the first mode, decoded in other ways
            wait_for_quiet(args.quiet_wait)
            e2e, _, _ = end_to_end(dataset, encoder, modes[0][1], args.batch_size, export_dir, pipeline)
            entry = best.setdefault(f"pipeline {name}", {"e2e": 0.0})
            entry["e2e"] = max(entry["e2e"], e2e)
            print(f"  round {round_ + 1}: {modes[0][0]} with pipeline {name}: e2e {e2e:.1f} img/s", flush=True)
    naive = best["naive"]["e2e"]
    print(f"\n{spec}: {len(dataset)} images, best of {args.rounds} rounds; {load()}\n")
    print("| mode | end to end img/s | x naive | forward-only img/s | e2e / forward | max 1-cos vs naive | setup s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(f"| naive loop (batch 1, eager fp32) | {naive:.1f} | 1.00 | | | 0 | |")
    for name, _ in modes:
        r = best[name]
        print(f"| {name} | {r['e2e']:.1f} | {r['e2e'] / naive:.2f} | {r['forward']:.1f} | {r['e2e'] / r['forward']:.2f} "
              f"| {r['max_dev']:.1e} | {r['setup_s']:.1f} |")  # fmt: skip
    if pipelines:
        forward = best[modes[0][0]]["forward"]
        print(f"\nDecoding pipelines ({modes[0][0]}; forward-only {forward:.1f} img/s):\n")
        print("| pipeline (parallel, workers, batches ahead) | end to end img/s | e2e / forward |")
        print("|---|---:|---:|")
        for name, pipeline in pipelines:
            r = best[f"pipeline {name}"]
            print(f"| {name} {pipeline} | {r['e2e']:.1f} | {r['e2e'] / forward:.2f} |")
    sys.stdout.flush()
    return {"model": spec, "n_images": len(dataset), "results": best}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["resnet34", "dinov2_vits14", "clip_vitb32"])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--n", type=int, default=256, help="images (a seeded subset; default 256)")
    parser.add_argument("--naive-n", type=int, default=None,
                        help="time the naive loop on the first N images only (default: all; it is per-image steady state)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--modes", nargs="+", default=None, help=f"default: cpu {DEFAULT_MODES['cpu']}, cuda {DEFAULT_MODES['cuda']}; all: {list(MODES)}")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved repetitions; the best is kept (default 2)")
    parser.add_argument("--pretrained", action="store_true", help="real weights instead of random-init")
    parser.add_argument("--pipelines", nargs="*", choices=list(PIPELINES), help="also time the first mode with these decoding pipelines")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--quiet-wait", type=float, default=60.0,
                        help="before each measurement wait up to this many s for CPU pressure < 5%% (shared machines; 0: off)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    args.modes = args.modes or DEFAULT_MODES[device.type]
    print("# benchmarks/extract.py " + " ".join(sys.argv[1:] if argv is None else argv))
    env = environment()
    print(json.dumps(env, indent=1))
    print(load(), flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="retbench-bench-") as tmp:
        for spec in args.models:
            results.append(bench_model(spec, args, device, Path(tmp) / "openvino"))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "environment": env,
                                         "results": results}, indent=1) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
