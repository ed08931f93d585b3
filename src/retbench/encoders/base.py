"""What an encoder is: the :class:`Encoder` protocol and its torch implementation."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Protocol, runtime_checkable

import torch

from retbench.encoders.preprocess import PreprocessConfig


@dataclass(frozen=True)
class WeightsRecord:
    """Where an encoder's weights came from; written into every result and cache key.

    Attributes:
        kind: ``"pretrained"`` (the library's download/cache), ``"file"`` (``--weights``),
            ``"random-init"`` (explicitly requested; numbers are meaningless) or
            ``"none"`` (a weightless baseline).
        source: upstream identity (URL, Hugging Face repo, PyPI package) or the file path.
        sha256: content hash of the weights file when one was read.
        seed: the RNG seed of a random init.
    """

    kind: str
    source: str
    sha256: str | None = None
    seed: int | None = None

    def identity(self) -> str:
        """A string that changes whenever the weights can differ (for cache keys)."""
        return f"{self.kind}|{self.source}|{self.sha256 or ''}|{self.seed if self.seed is not None else ''}"

    def to_dict(self) -> dict:
        return asdict(self)


@runtime_checkable
class Encoder(Protocol):
    """Maps a batch of preprocessed images to feature vectors.

    Attributes:
        name: the spec it was built from (``resnet34``, ``timm:convnext_tiny.fb_in1k``, ...).
        dim: feature dimension D.
        preprocess: the eval transform its inputs must go through.
        weights: where its weights came from.
    """

    name: str
    dim: int
    preprocess: PreprocessConfig
    weights: WeightsRecord

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) float32 normalised images -> (B, D) float32 features (not yet L2-normalised)."""
        ...


class TorchEncoder:
    """An :class:`Encoder` around a ``torch.nn.Module`` in eval mode with frozen parameters.

    ``model(batch)`` must return the (B, D) features: classification heads are removed
    by the backend that builds it (fc = identity, ``num_classes=0``, CLIP's visual tower).
    """

    def __init__(
        self,
        name: str,
        model: torch.nn.Module,
        dim: int,
        preprocess: PreprocessConfig,
        weights: WeightsRecord,
        backend: str,
        architecture: str,
    ) -> None:
        self.name = name
        self.model = model.eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        self.dim = dim
        self.preprocess = preprocess
        self.weights = weights
        self.backend = backend
        self.architecture = architecture
        self.device = torch.device("cpu")
        self.channels_last = False

    @property
    def convolutional(self) -> bool:
        """True for CNNs (more than one 2-D convolution; a ViT's patch embedding alone does not count)."""
        return sum(isinstance(m, torch.nn.Conv2d) for m in self.model.modules()) > 1

    def set_channels_last(self, enabled: bool) -> None:
        """Keep 4-D weights, and feed inputs, in ``channels_last`` memory format (or back to contiguous).

        The memory format changes which kernels run, not what is computed: fp32 features
        agree to float rounding (~1e-6).
        """
        self.model.to(memory_format=torch.channels_last if enabled else torch.contiguous_format)
        self.channels_last = bool(enabled)

    def to(self, device: str | torch.device) -> "TorchEncoder":
        """Move the model to ``device`` (inputs of :meth:`embed` follow it)."""
        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        if self.model.training:  # someone called .train(): BatchNorm would use batch statistics
            self.model.eval()
        batch = batch.to(self.device, non_blocking=True)
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)  # a no-op when it already is
        with torch.inference_mode():
            features = self.model(batch)
        if features.ndim != 2 or features.shape[1] != self.dim:
            raise RuntimeError(
                f"encoder {self.name!r} returned features of shape {tuple(features.shape)}, expected (B, {self.dim})"
            )
        return features.float()

    def describe(self) -> dict:
        """JSON-serialisable description (for results and cache keys)."""
        return {
            "name": self.name,
            "backend": self.backend,
            "architecture": self.architecture,
            "dim": self.dim,
            "preprocess": self.preprocess.to_dict(),
            "weights": self.weights.to_dict(),
        }
