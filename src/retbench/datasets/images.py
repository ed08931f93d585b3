"""Decoding one image file, and the record of one that failed."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image


@dataclass(frozen=True)
class BadImage:
    """An image that could not be decoded.

    Attributes:
        index: its row in the dataset (line order).
        path: path relative to ``images/``.
        where: ``list_of_images.txt:LINE`` or the file path, for messages.
        reason: the decoder's error.
    """

    index: int
    path: str
    where: str
    reason: str

    def to_dict(self) -> dict:
        return {"index": self.index, "path": self.path, "where": self.where, "reason": self.reason}


def load_rgb(path: Path) -> Image.Image:
    """Decode an image file fully into an RGB PIL image.

    Palette, greyscale, CMYK and alpha images are converted to RGB (alpha dropped),
    as torchvision's default loader does. EXIF orientation is not applied (the
    reference libraries do not apply it either). Truncated or corrupt files raise.

    Raises:
        OSError / PIL.UnidentifiedImageError / ValueError: the file is not a decodable image.
    """
    with warnings.catch_warnings():
        # Palette-with-transparency warnings are noise here; the conversion is well defined.
        warnings.simplefilter("ignore", UserWarning)
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
