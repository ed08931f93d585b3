"""Preprocessing configuration that travels with an encoder (and into every result).

A :class:`PreprocessConfig` fully describes the eval transform: resize, centre crop,
interpolation, mean/std. Decoding and geometry run per image (PIL, exactly as the
reference libraries' eval transforms do: :func:`geometry_transform`; or, opt-in, torch's
uint8 resize kernels: :func:`tensor_geometry_transform`); scaling to float and mean/std
normalisation run per batch (:func:`normalize_batch`), which keeps worker-to-model
transfers uint8.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
UNIT_MEAN = (0.0, 0.0, 0.0)
UNIT_STD = (1.0, 1.0, 1.0)

_INTERPOLATIONS = ("nearest", "bilinear", "bicubic")


@dataclass(frozen=True)
class PreprocessConfig:
    """How an image becomes the model's input tensor.

    Attributes:
        resize: an ``int`` resizes the shorter side to it, keeping the aspect ratio
            (torchvision ``Resize(int)``); a ``(height, width)`` pair resizes to exactly
            that size (squash).
        crop: ``(height, width)`` of the centre crop after resizing, or None.
        interpolation: ``"bilinear"``, ``"bicubic"`` or ``"nearest"`` (PIL, antialiased).
        mean, std: per-channel normalisation of [0, 1] RGB values.
        name: a label for humans (``"torchvision-imagenet"``, ``"study"``, ...).
    """

    resize: int | tuple[int, int]
    crop: tuple[int, int] | None
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    name: str = "custom"

    def __post_init__(self) -> None:
        if self.interpolation not in _INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {_INTERPOLATIONS}, got {self.interpolation!r}")
        if isinstance(self.resize, list):
            object.__setattr__(self, "resize", tuple(self.resize))
        if isinstance(self.crop, list):
            object.__setattr__(self, "crop", tuple(self.crop))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    @property
    def input_size(self) -> tuple[int, int] | None:
        """``(height, width)`` of the model input, or None when it depends on the image."""
        if self.crop is not None:
            return self.crop
        if isinstance(self.resize, tuple):
            return self.resize
        return None

    def to_dict(self) -> dict:
        return asdict(self)


def study_variant(config: PreprocessConfig, size: int = 224) -> PreprocessConfig:
    """The reference study's preprocessing: resize straight to ``size x size``, no crop."""
    return PreprocessConfig(
        resize=(size, size), crop=None, interpolation=config.interpolation, mean=config.mean, std=config.std, name="study"
    )


def resized_size(config: PreprocessConfig, width: int, height: int) -> tuple[int, int]:
    """``(width, height)`` of a ``width x height`` image after the resize step (before the crop).

    Same rule as torchvision ``Resize``: an ``int`` sets the shorter side and scales the
    longer one by ``int(size * long / short)``; a pair is the exact output size.
    """
    if isinstance(config.resize, tuple):
        return config.resize[1], config.resize[0]
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = config.resize, int(config.resize * long / short)
    return (new_short, new_long) if width <= height else (new_long, new_short)


def _resize_and_crop(config: PreprocessConfig) -> tuple[int | list[int], list[int] | None]:
    """The config's resize and crop as torchvision's resize / center_crop take them."""
    resize = list(config.resize) if isinstance(config.resize, tuple) else config.resize
    return resize, list(config.crop) if config.crop is not None else None


def geometry_transform(config: PreprocessConfig) -> Callable[[Image.Image], torch.Tensor]:
    """PIL RGB image -> (3, H, W) uint8 tensor: resize then centre crop, as the config says."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as F

    interpolation = InterpolationMode(config.interpolation)
    resize, crop = _resize_and_crop(config)

    def transform(image: Image.Image) -> torch.Tensor:
        image = F.resize(image, resize, interpolation=interpolation)
        if crop is not None:
            image = F.center_crop(image, crop)
        return F.pil_to_tensor(image)

    return transform


def tensor_geometry_transform(config: PreprocessConfig) -> Callable[[Image.Image], torch.Tensor]:
    """Like :func:`geometry_transform`, but resized by torch's uint8 kernels instead of PIL's.

    PIL RGB image (the loader's :func:`~retbench.datasets.load_rgb`) -> (3, H, W) uint8 tensor,
    contiguous. Same output size, crop and zero padding (torchvision's rules for tensors);
    bilinear and bicubic are antialiased as PIL's are, but round differently, so some pixels
    differ by a few levels (measured per preprocessing in BENCHMARKS.md, section 3), while the
    resize runs several times faster. "nearest" stays with PIL: torch's ``nearest-exact``
    picks other pixels where a pixel centre falls exactly on a boundary (e.g. 256 -> 224).
    The results of torch's kernels depend on the CPU's instruction set (its AVX2 path vs the
    generic one), which the embedding cache key records.

    Raises:
        ValueError: (when called) the image is not RGB.
    """
    if config.interpolation == "nearest":
        return geometry_transform(config)
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as F

    interpolation = InterpolationMode(config.interpolation)
    resize, crop = _resize_and_crop(config)

    def transform(image: Image.Image) -> torch.Tensor:
        if image.mode != "RGB":
            raise ValueError(f"tensor_geometry_transform needs an RGB image, got mode {image.mode!r}")
        pixels = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)  # channels-last strides
        pixels = F.resize(pixels, resize, interpolation=interpolation, antialias=True)
        if crop is not None:
            pixels = F.center_crop(pixels, crop)
        return pixels.contiguous()

    return transform


def normalize_batch(batch: torch.Tensor, config: PreprocessConfig) -> torch.Tensor:
    """(B, 3, H, W) uint8 -> float32 ``(x / 255 - mean) / std`` (same ops as ToTensor + Normalize)."""
    x = batch.to(torch.float32).div_(255)
    mean = torch.tensor(config.mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(config.std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return x.sub_(mean).div_(std)
