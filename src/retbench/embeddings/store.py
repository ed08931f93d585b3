"""Content-addressed embedding cache with resumable, atomic chunk writes.

Layout: ``<cache_dir>/embeddings/<key[:2]>/<key>/`` holding

- ``meta.json``: the full key material (encoder, weights identity, preprocessing,
  dataset manifest hash, versions), for humans and for ``retbench`` to report;
- ``part-00000.npz`` ...: finished chunks of an extraction in progress (a rerun after
  an interruption loads them instead of recomputing);
- ``vectors.npy`` + ``bad.json``: the finished (N, D) float32 matrix and the list of
  unreadable images; written last, atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from retbench.atomic_files import atomic_write_bytes, atomic_write_text


def cache_key(material: dict) -> str:
    """SHA-256 of the canonical JSON of everything that changes the embeddings."""
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


class CacheEntry:
    """One cached extraction, identified by its key."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def vectors_path(self) -> Path:
        return self.directory / "vectors.npy"

    def load(self) -> tuple[np.ndarray, list[dict]] | None:
        """``(vectors (N, D) float32, bad-image dicts)`` if this extraction finished, else None."""
        bad_path = self.directory / "bad.json"
        if not (self.vectors_path.is_file() and bad_path.is_file()):
            return None
        try:
            vectors = np.load(self.vectors_path, allow_pickle=False)
            bad = json.loads(bad_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # damaged entry: recompute
        return vectors, bad

    def write_meta(self, material: dict) -> None:
        atomic_write_text(self.directory / "meta.json", json.dumps(material, indent=2, sort_keys=True, default=str))

    def _part(self, chunk: int) -> Path:
        return self.directory / f"part-{chunk:05d}.npz"

    def load_chunk(self, chunk: int, n_rows: int, dim: int) -> tuple[np.ndarray, list[dict]] | None:
        """A finished chunk's ``(vectors (n_rows, D), bad dicts)``, or None if absent or damaged."""
        path = self._part(chunk)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                vectors = data["vectors"]
                bad = json.loads(str(data["bad"]))
        except (OSError, ValueError, KeyError):
            return None
        if vectors.shape != (n_rows, dim) or vectors.dtype != np.float32:
            return None
        return vectors, bad

    def save_chunk(self, chunk: int, vectors: np.ndarray, bad: list[dict]) -> None:
        import io

        buffer = io.BytesIO()
        np.savez(buffer, vectors=vectors, bad=np.array(json.dumps(bad)))
        atomic_write_bytes(self._part(chunk), buffer.getvalue())

    def finish(self, vectors: np.ndarray, bad: list[dict]) -> None:
        """Store the whole matrix and drop the chunk files."""
        atomic_write_text(self.directory / "bad.json", json.dumps(bad))
        atomic_write_bytes(self.vectors_path, _npy_bytes(vectors))
        for part in self.directory.glob("part-*.npz"):
            part.unlink(missing_ok=True)


class EmbeddingStore:
    """The embedding cache under ``root`` (``--cache-dir``)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).expanduser() / "embeddings"

    def entry(self, key: str) -> CacheEntry:
        return CacheEntry(self.root / key[:2] / key)

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
