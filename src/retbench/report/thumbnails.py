"""Small JPEG thumbnails for reports, made once and cached.

A thumbnail is keyed by the image's resolved path, file size and modification time (ns) and by
the thumbnail size and quality, so a replaced or touched image gets a new one and an unchanged
image is never decoded twice. JPEGs are decoded at reduced size (``Image.draft``): a 128 px
thumbnail of a 4000 px photo decodes at 1/8 scale.
"""

from __future__ import annotations

import hashlib
import io
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable

logger = logging.getLogger(__name__)

SIZE = 128
QUALITY = 80
_FORMAT_VERSION = "1"
_BACKGROUND = (255, 255, 255)


def make_thumbnail(path: Path, size: int = SIZE, quality: int = QUALITY) -> bytes:
    """JPEG bytes of ``path`` fitted inside ``size`` x ``size`` (aspect kept, EXIF orientation applied).

    Transparent images are flattened on white. Raises ``OSError`` (or PIL's errors) when the file
    cannot be read or decoded.
    """
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        image.draft("RGB", (size, size))  # JPEG: decode at the smallest scale >= size (1/2, 1/4, 1/8)
        image = ImageOps.exif_transpose(image)
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            rgba = image.convert("RGBA")
            flat = Image.new("RGB", rgba.size, _BACKGROUND)
            flat.paste(rgba, mask=rgba.getchannel("A"))
            image = flat
        else:
            image = image.convert("RGB")
        image.thumbnail((size, size), Image.Resampling.BICUBIC, reducing_gap=2.0)
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality, optimize=True)
    return buffer.getvalue()


class ThumbnailCache:
    """Thumbnails of image files, cached on disk under ``root`` (None: not cached).

    ``get`` returns None for a missing or undecodable image (the report shows a placeholder).
    A cache that cannot be written is skipped with a warning; it never fails a report.
    """

    def __init__(self, root: Path | None, size: int = SIZE, quality: int = QUALITY) -> None:
        self.root = Path(root) if root is not None else None
        self.size = size
        self.quality = quality
        self.hits = 0
        self.made = 0
        self._memo: dict[Path, bytes | None] = {}
        self._warned = False

    def key(self, path: Path) -> str | None:
        """The cache key of ``path`` as it is now, or None when it is not a readable file."""
        try:
            resolved = path.resolve()
            st = resolved.stat()
        except OSError:
            return None
        if not resolved.is_file():
            return None
        text = f"{_FORMAT_VERSION}|{resolved}|{st.st_size}|{st.st_mtime_ns}|{self.size}|{self.quality}"
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()

    def _cached_path(self, key: str) -> Path | None:
        return self.root / key[:2] / f"{key}.jpg" if self.root is not None else None

    def get(self, path: Path) -> bytes | None:
        if path in self._memo:
            return self._memo[path]
        data = self._get(path)
        self._memo[path] = data
        return data

    def _get(self, path: Path) -> bytes | None:
        key = self.key(path)
        if key is None:
            return None
        cached = self._cached_path(key)
        if cached is not None:
            try:
                data = cached.read_bytes()
            except OSError:
                data = b""
            if data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9":  # a whole JPEG (SOI ... EOI)
                self.hits += 1
                return data
        try:
            data = make_thumbnail(path, self.size, self.quality)
        except Exception as exc:  # noqa: BLE001 - any decoding failure becomes a placeholder, never a failed report
            logger.warning("cannot make a thumbnail of %s: %s", path, exc)
            return None
        self.made += 1
        if cached is not None:
            self._store(cached, data)
        return data

    def _store(self, cached: Path, data: bytes) -> None:
        import os
        import tempfile

        try:  # atomic (temporary file + rename); no fsync: a lost cache entry is only remade
            cached.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{cached.name}.", dir=cached.parent)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, cached)
        except OSError as exc:
            if not self._warned:
                logger.warning("thumbnail cache %s is not writable (%s); thumbnails are not cached", self.root, exc)
                self._warned = True

    def prefetch(self, paths: Iterable[Path], workers: int = 4) -> None:
        """Make (or read) the thumbnails of ``paths`` in parallel threads (decoding releases the GIL)."""
        todo = [p for p in dict.fromkeys(paths) if p not in self._memo]
        if len(todo) < 8 or workers <= 1:
            for p in todo:
                self.get(p)
            return
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for p, data in zip(todo, pool.map(self._get, todo)):
                self._memo[p] = data
