"""How the model runs: the runtime (torch or OpenVINO), the precision and the memory format.

:func:`resolve_runtime` turns the user's options into a :class:`RuntimeConfig` (validated,
``auto`` choices made), which goes into the cache key and the results. :func:`open_forward`
turns it into a forward function ``(B, 3, H, W) uint8 -> (B, D) float32 features``:
normalisation included, so each runtime can do it its own way (torch: per batch, exactly
as ``ToTensor + Normalize``; OpenVINO: inside the compiled graph).

Defaults (why): ``fp32`` everywhere, since the numbers must match the reference study and
the upstream libraries (TF32 is switched off for fp32 on CUDA for the same reason);
``channels_last`` on for CNNs (same fp32 arithmetic in another memory order, agreeing to
~1e-6, and much faster with oneDNN / cuDNN); the torch runtime (OpenVINO is an optional
extra and is asked for explicitly). Faster modes (bf16, fp16 on CUDA, OpenVINO bf16) change
the numbers slightly; their cost is measured in BENCHMARKS.md.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch

from retbench.encoders.preprocess import normalize_batch
from retbench.errors import EmbeddingError

RUNTIMES = ("torch", "openvino")
PRECISIONS = ("fp32", "bf16", "fp16")

Forward = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class RuntimeConfig:
    """A resolved way of running an encoder (part of the cache key and of every result).

    Attributes:
        runtime: ``"torch"`` or ``"openvino"`` (CPU).
        precision: ``"fp32"``, ``"bf16"`` (autocast / OpenVINO inference precision) or ``"fp16"`` (CUDA autocast).
        channels_last: 4-D weights and inputs in channels_last memory format (torch runtime).
        device: ``"cpu"`` or ``"cuda"`` (the device type).
    """

    runtime: str = "torch"
    precision: str = "fp32"
    channels_last: bool = False
    device: str = "cpu"

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_runtime(
    encoder, device: torch.device, *, runtime: str = "torch", precision: str = "fp32", channels_last: bool | None = None
) -> RuntimeConfig:
    """Check the options against the encoder and device, and make the ``auto`` choices.

    Args:
        channels_last: None (auto) = on for convolutional torch models, off otherwise.

    Raises:
        EmbeddingError: an unknown runtime or precision, fp16 off CUDA, OpenVINO off the
            CPU or on an encoder that is not a torch module; each message names the fix.
    """
    if runtime not in RUNTIMES:
        raise EmbeddingError(f"--runtime must be one of {RUNTIMES}, got {runtime!r}")
    if precision not in PRECISIONS:
        raise EmbeddingError(f"--precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp16" and device.type != "cuda":
        raise EmbeddingError("--precision fp16 needs --device cuda (on the CPU use bf16)")
    model = getattr(encoder, "model", None)
    if runtime == "openvino":
        if device.type != "cpu":
            raise EmbeddingError(f"--runtime openvino runs on the CPU; got --device {device} (use --runtime torch on CUDA)")
        if not isinstance(model, torch.nn.Module):
            raise EmbeddingError(f"--runtime openvino needs a torch encoder; {encoder.name!r} is not one (use --runtime torch)")
        if channels_last:
            raise EmbeddingError("--channels-last applies to --runtime torch (OpenVINO chooses its own layouts)")
        return RuntimeConfig("openvino", precision, False, device.type)
    supports_memory_format = hasattr(encoder, "set_channels_last")
    if channels_last is None:
        channels_last = supports_memory_format and bool(getattr(encoder, "convolutional", False))
    elif channels_last and not supports_memory_format:
        raise EmbeddingError(f"--channels-last: encoder {encoder.name!r} cannot change its memory format")
    return RuntimeConfig("torch", precision, bool(channels_last), device.type)


@contextlib.contextmanager
def open_forward(encoder, config: RuntimeConfig, *, export_dir: Path | None = None) -> Iterator[Forward]:
    """A forward function for ``config``: ``(B, 3, H, W) uint8 pixels -> (B, D) float32 features``.

    The torch runtime switches the encoder's memory format for the duration and restores
    it afterwards. The OpenVINO runtime exports the model once into ``export_dir``
    (reused by later runs) and compiles it.
    """
    if config.runtime == "openvino":
        from retbench.embeddings.openvino_runtime import openvino_forward

        yield openvino_forward(encoder, config.precision, export_dir=export_dir)
        return
    with _torch_forward(encoder, config) as forward:
        yield forward


@contextlib.contextmanager
def _torch_forward(encoder, config: RuntimeConfig) -> Iterator[Forward]:
    device = torch.device(getattr(encoder, "device", "cpu"))
    previous = bool(getattr(encoder, "channels_last", False))
    if config.channels_last != previous:
        encoder.set_channels_last(config.channels_last)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    autocast = _autocast(device, config.precision)

    def forward(pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.to(device, non_blocking=True).contiguous(memory_format=memory_format)
        x = normalize_batch(x, encoder.preprocess)  # elementwise: keeps the memory format
        with autocast:
            return encoder.embed(x)

    try:
        with _exact_fp32_on_cuda(device, config.precision):
            yield forward
    finally:
        if config.channels_last != previous:
            encoder.set_channels_last(previous)


def _autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


@contextlib.contextmanager
def _exact_fp32_on_cuda(device: torch.device, precision: str) -> Iterator[None]:
    """fp32 on CUDA means IEEE fp32: cuDNN convolutions default to TF32 on Ampere and later."""
    if device.type != "cuda" or precision != "fp32":
        yield
        return
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):  # torch >= 2.9
        saved = conv.fp32_precision
        conv.fp32_precision = "ieee"
        try:
            yield
        finally:
            conv.fp32_precision = saved
        return
    saved_flag = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = saved_flag
