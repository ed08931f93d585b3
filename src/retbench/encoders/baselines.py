"""Weightless baselines: what a learned encoder must beat."""

from __future__ import annotations

import torch

from retbench.encoders.base import TorchEncoder, WeightsRecord
from retbench.encoders.preprocess import UNIT_MEAN, UNIT_STD, PreprocessConfig
from retbench.encoders.registry import BuildOptions, register_encoder
from retbench.errors import EncoderError

COLORHIST_BINS = 8
COLORHIST_PREPROCESS = PreprocessConfig(
    resize=(128, 128), crop=None, interpolation="bilinear", mean=UNIT_MEAN, std=UNIT_STD, name="colorhist-128"
)


class ColorHistogram(torch.nn.Module):
    """Joint RGB histogram with ``bins`` levels per channel, square-rooted (Hellinger features).

    Input (B, 3, H, W) in [0, 1]; output (B, bins**3) float32. With square-rooted L1
    histograms, the cosine similarity of the L2-normalised features is the
    Bhattacharyya coefficient of the two colour distributions.
    """

    def __init__(self, bins: int = COLORHIST_BINS) -> None:
        super().__init__()
        self.bins = bins

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        levels = (images.clamp(0, 1) * self.bins).long().clamp_(max=self.bins - 1)
        codes = (levels[:, 0] * self.bins + levels[:, 1]) * self.bins + levels[:, 2]
        codes = codes.flatten(1)
        counts = torch.zeros(images.shape[0], self.bins**3, dtype=torch.float32, device=images.device)
        counts.scatter_add_(1, codes, torch.ones_like(codes, dtype=torch.float32))
        return (counts / codes.shape[1]).sqrt()


@register_encoder(
    "colorhist",
    backend="builtin",
    dim=COLORHIST_BINS**3,
    weights_source="none (no weights)",
    description="joint RGB colour histogram, 8x8x8 bins, square-rooted; a weightless baseline",
    local_weights=lambda: "builtin",
)
def _build_colorhist(name: str, options: BuildOptions) -> TorchEncoder:
    if options.weights is not None:
        raise EncoderError(f"encoder {name!r} has no weights; drop --weights")
    preprocess = COLORHIST_PREPROCESS
    return TorchEncoder(name, ColorHistogram(), COLORHIST_BINS**3, preprocess, WeightsRecord("none", "colorhist"), "builtin", "colorhist")
