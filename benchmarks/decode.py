"""Decoding throughput of the input pipeline alone, per ``--decode`` mode, and how far each moves the pixels.

What the model waits for when it is faster than decoding (a GPU; see the CUDA section of
BENCHMARKS.md, where end to end ran at 0.15-0.71 of forward-only): for each decode mode
(``full``, ``reduced``, ``fast``) and each way of running the decoders (``threads`` in the
model's process, the CPU default; ``processes``, the CUDA default), images per second through
``retbench.embeddings.loader.iterate_batches`` with one worker per core, best of ``--rounds``
interleaved rounds. Then, over every image of the sample, how many pixels each mode's model
input differs from the exact ``full`` decode in, and by how many levels at most; and, per
preprocessing (resize + centre crop, or the study's squash; bilinear or bicubic), the resize
alone on one thread, PIL vs torch (``--decode fast``'s resize; best of ``--rounds``, alternating),
with the same pixel comparison, and the decoding alone for scale. The sample is held decoded in
memory for that (about 1 GB for 1,024 clothing10 photos).

    .venv/bin/python benchmarks/decode.py --json benchmarks/results/decode.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from extract import DEFAULT_DATASET, environment, load, sample, wait_for_quiet  # noqa: E402

from retbench.datasets import load_dataset, load_rgb  # noqa: E402
from retbench.embeddings.loader import DECODE_MODES, PARALLEL_MODES, ImageReader, default_num_workers, iterate_batches  # noqa: E402
from retbench.encoders import build_encoder  # noqa: E402
from retbench.encoders.preprocess import PreprocessConfig, geometry_transform, tensor_geometry_transform  # noqa: E402

#: (name, resize, crop) of the preprocessings compared for the resize alone.
GEOMETRIES = [("resize 256 + crop 224", 256, (224, 224)), ("resize 224 + crop 224", 224, (224, 224)),
              ("squash 224 x 224 (study)", (224, 224), None)]  # fmt: skip


def throughput(dataset, preprocess, decode: str, parallel: str, workers: int, batch_size: int) -> float:
    """Images per second decoded, resized and batched (no model)."""
    batches = [list(range(i, min(i + batch_size, len(dataset)))) for i in range(0, len(dataset), batch_size)]
    started = time.perf_counter()
    n = sum(len(batch.indices) for batch in iterate_batches(dataset, preprocess, batches, num_workers=workers,
                                                            decode=decode, parallel=parallel, prefetch=2))  # fmt: skip
    return n / (time.perf_counter() - started)


def pixel_deviation(dataset, preprocess, decode: str) -> dict:
    """How the model inputs of ``decode`` differ from ``full``'s, over every image."""
    exact, other = ImageReader(dataset, preprocess, "full"), ImageReader(dataset, preprocess, decode)
    compared = [compare(exact(row)[1], other(row)[1]) for row in range(len(dataset))]
    size = 3 * int(np.prod(preprocess.input_size))  # pixels x channels of one model input
    return {"images_changed": sum(n > 0 for n, _ in compared), "pixels_changed": sum(n for n, _ in compared) /
            (size * len(compared)), "max_levels": max(m for _, m in compared)}  # fmt: skip


def compare(a: torch.Tensor, b: torch.Tensor) -> tuple[int, int]:
    """(pixels that differ, largest difference in levels) of two uint8 images."""
    difference = (a.int() - b.int()).abs()
    return int((difference > 0).sum()), int(difference.max())


def resize_alone(images: list, interpolation: str, rounds: int) -> list[dict]:
    """Per geometry: PIL vs torch resize time (ms per image, one thread, best of ``rounds``
    alternating) and their pixel differences."""
    rows = []
    for name, resize, crop in GEOMETRIES:
        config = PreprocessConfig(resize=resize, crop=crop, interpolation=interpolation, mean=(0, 0, 0), std=(1, 1, 1))
        transforms = {"pil": geometry_transform(config), "torch": tensor_geometry_transform(config)}
        seconds, outputs = {"pil": float("inf"), "torch": float("inf")}, {}
        for _ in range(rounds):
            for library, transform in transforms.items():
                started = time.perf_counter()
                outputs[library] = [transform(image) for image in images]
                seconds[library] = min(seconds[library], time.perf_counter() - started)
        compared = [compare(a, b) for a, b in zip(outputs["pil"], outputs["torch"])]
        size = outputs["pil"][0].numel()
        rows.append({"geometry": name, "interpolation": interpolation,
                     "pil_ms": 1e3 * seconds["pil"] / len(images), "torch_ms": 1e3 * seconds["torch"] / len(images),
                     "pixels_changed": sum(n for n, _ in compared) / (size * len(images)),
                     "worst_image_pixels_changed": max(n for n, _ in compared) / size,
                     "max_levels": max(m for _, m in compared)})  # fmt: skip
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--model", default="resnet34", help="whose preprocessing (resize 256, crop 224 by default)")
    parser.add_argument("--n", type=int, default=1024, help="images (a seeded subset; default 1024)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quiet-wait", type=float, default=60.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    print("# benchmarks/decode.py " + " ".join(sys.argv[1:] if argv is None else argv))
    env = environment()
    print(json.dumps(env, indent=1))
    preprocess = build_encoder(args.model, random_init=True).preprocess
    dataset = sample(load_dataset(args.dataset), args.n, 0)
    workers = default_num_workers()
    print(f"{len(dataset)} images of {args.dataset.name}, {args.model} preprocessing {preprocess}, {workers} workers; "
          f"{load()}", flush=True)  # fmt: skip
    best = {(d, p): 0.0 for d in DECODE_MODES for p in PARALLEL_MODES}
    for round_ in range(args.rounds):
        for (decode, parallel), rate in best.items():
            wait_for_quiet(args.quiet_wait)
            measured = throughput(dataset, preprocess, decode, parallel, workers, args.batch_size)
            best[decode, parallel] = max(rate, measured)
            print(f"  round {round_ + 1}: {decode} / {parallel}: {measured:.0f} img/s; {load()}", flush=True)
    deviations = {d: pixel_deviation(dataset, preprocess, d) for d in DECODE_MODES if d != "full"}
    paths = [dataset.image_path(row) for row in range(len(dataset))]
    decode_s = float("inf")
    for _ in range(args.rounds):
        started = time.perf_counter()
        images = [load_rgb(path) for path in paths]
        decode_s = min(decode_s, time.perf_counter() - started)
    sizes = np.array([image.size for image in images])
    torch.set_num_threads(1)
    resizes = [row for interpolation in ("bilinear", "bicubic") for row in resize_alone(images, interpolation, args.rounds)]
    print("\n| decode | threads (img/s) | processes (img/s) | vs full (processes) | images changed | pixels changed | max levels |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for decode in DECODE_MODES:
        dev = deviations.get(decode, {"images_changed": 0, "pixels_changed": 0.0, "max_levels": 0})
        print(f"| {decode} | {best[decode, 'threads']:.0f} | {best[decode, 'processes']:.0f} | "
              f"{best[decode, 'processes'] / best['full', 'processes']:.2f}x | {dev['images_changed']} of {len(dataset)} | "
              f"{100 * dev['pixels_changed']:.2f}% | {dev['max_levels']} |")  # fmt: skip
    print(f"\nThe resize alone (after decoding), one thread, PIL vs torch, over the same {len(images)} images "
          f"({sizes[:, 0].min()}-{sizes[:, 0].max()} x {sizes[:, 1].min()}-{sizes[:, 1].max()} px; decoding them "
          f"alone with PIL, for scale: {1e3 * decode_s / len(images):.2f} ms per image; "
          f"torch {torch.backends.cpu.get_cpu_capability()} kernels):\n")  # fmt: skip
    print("| preprocessing | interpolation | PIL ms / image | torch ms / image | speed-up | pixels changed | "
          "worst image | max levels |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in resizes:
        print(f"| {r['geometry']} | {r['interpolation']} | {r['pil_ms']:.2f} | {r['torch_ms']:.2f} | "
              f"{r['pil_ms'] / r['torch_ms']:.1f}x | {100 * r['pixels_changed']:.2f}% | "
              f"{100 * r['worst_image_pixels_changed']:.1f}% | {r['max_levels']} |")  # fmt: skip
    print(f"\n{load()}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        rows = [{"decode": d, "parallel": p, "images_per_s": r} for (d, p), r in best.items()]
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "environment": env,
                                         "throughput": rows, "deviation": deviations, "resize_alone": resizes,
                                         "decode_ms": 1e3 * decode_s / len(images)},
                                        indent=1) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
