"""Probe: OpenVINO int8 post-training quantization (NNCF) as an extraction mode. Tried, not offered.

Measures, in one run, (1) forward-only throughput of random-init resnet34 and DINOv2 ViT-S/14 as
OpenVINO models at fp32, bf16 and int8 (NNCF ``quantize`` on 64 random calibration inputs: enough
for speed), batch 32, best of 4; and (2) the accuracy cost with real weights: efficientnet_lite0
quantized with 300 calibration images (the bundled demo set, or ``--calibration DIR``), leave-one-out
mAP on clothing10 and signdigits10 against the same model at fp32, and the largest 1 - cos
between an image's int8 and fp32 features. ``--fast-bias-correction off`` runs NNCF's full bias
correction instead.

Needs NNCF, which retbench does not depend on: ``pip install nncf==3.4.0`` (it pulls scikit-learn).

    .venv/bin/python benchmarks/int8_probe.py > benchmarks/results/int8_probe.txt
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def forward_speed(core, ov, nncf) -> None:
    import timm
    import torchvision

    torch.manual_seed(0)
    models = {"resnet34": torchvision.models.resnet34(),
              "dinov2_vits14": timm.create_model("vit_small_patch14_dinov2", pretrained=False, img_size=224, num_classes=0)}  # fmt: skip
    models["resnet34"].fc = torch.nn.Identity()
    batch = np.random.default_rng(0).standard_normal((32, 3, 224, 224)).astype(np.float32)
    calibration = [np.random.default_rng(i).standard_normal((1, 3, 224, 224)).astype(np.float32) for i in range(64)]
    for name, model in models.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            converted = ov.convert_model(model.eval(), example_input=torch.zeros(1, 3, 224, 224),
                                         input=[ov.PartialShape([-1, 3, 224, 224])])  # fmt: skip
        kind = nncf.ModelType.TRANSFORMER if name.startswith("dinov2") else None
        quantized = nncf.quantize(converted, nncf.Dataset(calibration), subset_size=64, model_type=kind)
        rates = {}
        for label, graph, precision in (("fp32", converted, "f32"), ("bf16", converted, "bf16"),
                                        ("int8", quantized, "bf16")):  # fmt: skip
            compiled = core.compile_model(graph, "CPU", {"INFERENCE_PRECISION_HINT": precision,
                                                         "PERFORMANCE_HINT": "LATENCY"})  # fmt: skip
            compiled(batch)
            best = min(_timed(compiled, batch) for _ in range(4))
            rates[label] = 32 / best
        print(f"{name} forward-only img/s: " + ", ".join(f"{k} {v:.1f}" for k, v in rates.items())
              + f"; int8 / bf16 = {rates['int8'] / rates['bf16']:.2f}x", flush=True)  # fmt: skip


def _timed(compiled, batch) -> float:
    started = time.perf_counter()
    compiled(batch)
    return time.perf_counter() - started


def accuracy(core, nncf, calibration_dir: Path, fast_bias_correction: bool) -> None:
    from retbench.datasets import load_dataset
    from retbench.embeddings.loader import ImageReader
    from retbench.embeddings.openvino_runtime import exported_model
    from retbench.encoders import build_encoder
    from retbench.metrics import evaluate

    encoder = build_encoder("efficientnet_lite0")
    model = exported_model(encoder, Path(tempfile.mkdtemp()) / "openvino")
    calibration = load_dataset(calibration_dir)
    reader = ImageReader(calibration, encoder.preprocess)
    rows = np.random.default_rng(0).choice(len(calibration), min(300, len(calibration)), replace=False)
    pixels = [reader(int(i))[1].numpy()[None] for i in rows]
    quantized = nncf.quantize(model, nncf.Dataset(pixels), subset_size=len(pixels),
                              fast_bias_correction=fast_bias_correction)  # fmt: skip
    print(f"efficientnet_lite0 int8: calibrated on {len(pixels)} images of {calibration_dir}, "
          f"fast_bias_correction={fast_bias_correction}", flush=True)  # fmt: skip
    compiled = {label: core.compile_model(graph, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
                for label, graph in (("fp32", model), ("int8", quantized))}  # fmt: skip
    for name in ("clothing10", "signdigits10"):
        dataset = load_dataset(SHARED / name)
        reader = ImageReader(dataset, encoder.preprocess)
        features = {}
        for label, net in compiled.items():
            parts = []
            for start in range(0, len(dataset), 32):
                batch = np.stack([reader(i)[1].numpy() for i in range(start, min(start + 32, len(dataset)))])
                parts.append(np.array(net(batch)[0], dtype=np.float32))
            f = np.concatenate(parts)
            features[label] = f / np.linalg.norm(f, axis=1, keepdims=True)
        maps = {label: evaluate(f, list(dataset.labels), n_bootstrap=0).map for label, f in features.items()}
        deviation = float((1 - (features["fp32"] * features["int8"]).sum(axis=1)).max())
        print(f"{name}: mAP fp32 {maps['fp32']:.4f}, int8 {maps['int8']:.4f} ({maps['int8'] - maps['fp32']:+.4f}); "
              f"max 1 - cos {deviation:.3f}", flush=True)  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calibration", type=Path, default=REPO / "src" / "retbench" / "demo_data" / "clothing-demo")
    parser.add_argument("--fast-bias-correction", choices=("on", "off"), default="on")
    args = parser.parse_args(argv)
    import nncf
    import openvino as ov

    core = ov.Core()
    print(f"openvino {ov.__version__}, nncf {nncf.__version__}, torch {torch.__version__}", flush=True)
    forward_speed(core, ov, nncf)
    if SHARED.is_dir():
        accuracy(core, nncf, args.calibration, args.fast_bias_correction == "on")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
