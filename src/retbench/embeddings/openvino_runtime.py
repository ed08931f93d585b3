"""The OpenVINO runtime for the CPU (optional extra: ``pip install 'retbench[openvino]'``).

The torch model is converted once (``openvino.convert_model``) with a dynamic batch
dimension and uint8 NCHW input; ``ToTensor + Normalize`` become part of the graph
(``x / 255 - mean) / std``, the same arithmetic as :func:`~retbench.encoders.normalize_batch`).
The converted model is saved, with fp32 weights, under
``<export_dir>/<key>/model.xml`` where the key hashes the encoder's identity (spec, weights,
preprocessing), the input shape and the library versions, so a rerun skips the export.
It is compiled for the CPU with ``INFERENCE_PRECISION_HINT`` f32 or bf16.

It is compiled with OpenVINO's ``LATENCY`` hint: one stream whose threads share each
batch (measured faster here than the ``THROUGHPUT`` hint's one-stream-per-core, which a
forward call supports by splitting its batch over the streams; see BENCHMARKS.md).

OpenVINO's model conversion reports usage to Google Analytics unless the user has opted out
(``opt_in_out --opt_out``): some 17 reports per conversion, each sent from a copy of this
process forked by a background thread. retbench converts with that reporting switched off
(:func:`_usage_telemetry_off`): the forks made each export slower (``benchmarks/openvino_export.py``)
and, once an evaluation has started numba's thread pool, drew a warning each. (The one event
OpenVINO sends when it is imported is left to the user's setting.)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from retbench._version import __version__
from retbench.errors import EmbeddingError

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'retbench[openvino]'"
_INFERENCE_PRECISION = {"fp32": "f32", "bf16": "bf16"}
PERFORMANCE_HINT = "LATENCY"  # or "THROUGHPUT": one stream per core or so (measured slower on 2 cores)
_CONVERSION_LOCK = threading.RLock()  # one conversion at a time: they share OpenVINO's telemetry switch


def import_openvino():
    """The ``openvino`` module, or an error that says how to install it."""
    try:
        import openvino
    except ImportError as exc:
        raise EmbeddingError(f"--runtime openvino needs OpenVINO, which is not installed: {INSTALL_HINT}") from exc
    return openvino


def export_key(encoder) -> str:
    """Hash of everything that changes the exported graph or its weights."""
    ov = import_openvino()
    describe = encoder.describe()
    material = {
        "format": 1,
        "retbench": __version__,
        "encoder": {k: describe[k] for k in ("name", "backend", "architecture", "dim", "preprocess")},
        "weights": encoder.weights.identity(),
        "input": ["batch", 3, *encoder.preprocess.input_size],
        "versions": {"torch": torch.__version__, "openvino": ov.__version__},
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()[:32]


@contextlib.contextmanager
def _usage_telemetry_off():
    """Switch off the usage reports of OpenVINO's model conversion (see the module docstring) while inside.

    The conversion reports through one process-wide ``openvino_telemetry.Telemetry`` object, set up
    on first use; it is set up here as the conversion would, and its consent flag is cleared and
    then restored. Where the telemetry package is absent (the conversion then uses a no-op stub)
    or its layout differs, there is nothing to switch off. Conversions run one at a time.
    """
    with _CONVERSION_LOCK:
        try:
            from openvino.tools.ovc.telemetry_utils import init_ovc_telemetry

            telemetry = init_ovc_telemetry()
            consent = telemetry.consent
            telemetry.consent = False
        except Exception:  # noqa: BLE001 (no telemetry package, or another layout: leave it alone)
            telemetry = None
        try:
            yield
        finally:
            if telemetry is not None:
                telemetry.consent = consent


def _convert(encoder):
    """The encoder's model as an OpenVINO model: dynamic batch, uint8 NCHW input, normalisation inside."""
    ov = import_openvino()
    from openvino.preprocess import PrePostProcessor

    height, width = encoder.preprocess.input_size
    model = encoder.model.eval()
    if getattr(encoder, "channels_last", False):  # export the plain layout; OpenVINO picks its own
        model = model.to(memory_format=torch.contiguous_format)
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings(), _usage_telemetry_off():
        # OpenVINO traces with TorchScript: its deprecation and tracer warnings are not the user's concern
        warnings.simplefilter("ignore")
        converted = ov.convert_model(model, example_input=torch.zeros(1, 3, height, width),
                                     input=[ov.PartialShape([-1, 3, height, width])])  # fmt: skip
    if getattr(encoder, "channels_last", False):
        model.to(memory_format=torch.channels_last)
    ppp = PrePostProcessor(converted)
    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NCHW"))
    ppp.input().model().set_layout(ov.Layout("NCHW"))
    config = encoder.preprocess
    ppp.input().preprocess().convert_element_type(ov.Type.f32).scale(255.0).mean(list(config.mean)).scale(list(config.std))
    ppp.output().tensor().set_element_type(ov.Type.f32)
    return ppp.build()


def exported_model(encoder, export_dir: Path):
    """The converted model from ``export_dir`` (exported and saved there on first use)."""
    ov = import_openvino()
    directory = Path(export_dir) / export_key(encoder)
    xml = directory / "model.xml"
    core = ov.Core()
    if xml.is_file():
        try:
            return core.read_model(xml)
        except RuntimeError as exc:  # damaged entry: export again
            logger.warning("re-exporting %s: cached OpenVINO model %s is unreadable (%s)", encoder.name, xml, exc)
            shutil.rmtree(directory, ignore_errors=True)
    started = time.perf_counter()
    model = _convert(encoder)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        ov.save_model(model, staging / "model.xml", compress_to_fp16=False)  # keep fp32 weights
        (staging / "encoder.json").write_text(json.dumps(encoder.describe(), indent=1, default=str), encoding="utf-8")
        try:
            os.rename(staging, directory)  # atomic; another process may have finished first
        except OSError:
            pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("exported %s to OpenVINO in %.1f s (%s)", encoder.name, time.perf_counter() - started, directory)
    return model


class OpenVINOForward:
    """``(B, 3, H, W) uint8 -> (B, D) float32`` through a compiled OpenVINO model."""

    def __init__(self, compiled, n_requests: int) -> None:
        self.compiled = compiled
        self.requests = [compiled.create_infer_request() for _ in range(max(1, n_requests))]

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(pixels.numpy())
        parts = np.array_split(array, min(len(self.requests), len(array)))
        active = self.requests[: len(parts)]
        for request, part in zip(active, parts):
            request.start_async({0: part})
        outputs = []
        for request in active:
            request.wait()
            outputs.append(np.array(request.get_output_tensor(0).data, dtype=np.float32, copy=True))
        return torch.from_numpy(np.concatenate(outputs))

    @property
    def inference_precision(self) -> str:
        return str(self.compiled.get_property("INFERENCE_PRECISION_HINT"))


def openvino_forward(encoder, precision: str, *, export_dir: Path | None = None) -> OpenVINOForward:
    """Compile ``encoder`` for the CPU at ``precision`` (``fp32`` or ``bf16``).

    Raises:
        EmbeddingError: OpenVINO is not installed, or an unsupported precision.
    """
    if precision not in _INFERENCE_PRECISION:
        raise EmbeddingError(f"--runtime openvino supports --precision fp32 or bf16, got {precision!r}")
    ov = import_openvino()
    if export_dir is None:
        from retbench.environment import default_cache_dir

        export_dir = Path(default_cache_dir()) / "openvino"
    model = exported_model(encoder, export_dir)
    compiled = ov.Core().compile_model(
        model, "CPU", {"INFERENCE_PRECISION_HINT": _INFERENCE_PRECISION[precision], "PERFORMANCE_HINT": PERFORMANCE_HINT}
    )
    n_requests = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    return OpenVINOForward(compiled, n_requests)
