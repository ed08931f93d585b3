"""The encoder registry: spec strings -> entries that know how to build an encoder.

Spec strings (habit 3 of STYLE.md):

- a registered name: ``resnet34``, ``dinov2_vits14``, ``clip_vitb32``, ``efficientnet_lite0``, ``colorhist``;
- ``timm:NAME`` for any timm model (``timm:convnext_tiny.fb_in1k``), built with ``num_classes=0``;
- ``open_clip:ARCH/TAG`` for any open_clip model (``open_clip:ViT-B-32/laion2b_s34b_b79k``).

Backends register their entries with :func:`register_encoder`; they import their
heavy libraries only when an encoder is built.
"""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from retbench.errors import EncoderError

PREPROCESS_VARIANTS = ("default", "study")
_BACKEND_MODULES = (
    "retbench.encoders.torchvision_models",
    "retbench.encoders.timm_models",
    "retbench.encoders.open_clip_models",
    "retbench.encoders.baselines",
)


@dataclass(frozen=True)
class BuildOptions:
    """How to build an encoder; frozen so it can be written into results as is.

    Attributes:
        weights: a local weights file (``--weights``); None = the pretrained weights.
        random_init: explicitly use random weights of the real architecture (tests and
            speed runs only; recorded in results). Never chosen implicitly.
        preprocess: ``"default"`` (the upstream library's eval transform) or ``"study"``
            (resize straight to 224 x 224, as the reference study describes).
        seed: RNG seed of a random init.
    """

    weights: Path | None = None
    random_init: bool = False
    preprocess: str = "default"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.weights is not None and self.random_init:
            raise EncoderError("--weights and --random-init exclude each other: pass one of them")
        if self.preprocess not in PREPROCESS_VARIANTS:
            raise EncoderError(f"--preprocess must be one of {PREPROCESS_VARIANTS}, got {self.preprocess!r}")


@dataclass(frozen=True)
class EncoderEntry:
    """One buildable encoder.

    Attributes:
        name: the spec string.
        backend: ``torchvision``, ``timm``, ``open_clip`` or ``builtin``.
        dim: feature dimension, or None when only known once built (dynamic specs).
        weights_source: where pretrained weights come from, for humans.
        description: one line.
        build: ``build(name, options) -> Encoder`` (on the CPU).
        local_weights: returns the path of locally available pretrained weights, or None;
            ``"builtin"`` for encoders without weights.
    """

    name: str
    backend: str
    dim: int | None
    weights_source: str
    description: str
    build: Callable
    local_weights: Callable[[], str | None]

    def weights_available(self) -> bool:
        try:
            return self.local_weights() is not None
        except Exception:  # a broken cache or missing optional library: report "not available"
            return False


_REGISTRY: dict[str, EncoderEntry] = {}
_loaded = False


def register_encoder(
    name: str, *, backend: str, dim: int | None, weights_source: str, description: str, local_weights: Callable
) -> Callable:
    """Decorator: register ``build(name, options) -> Encoder`` under ``name``."""

    def decorator(build: Callable) -> Callable:
        if name in _REGISTRY:
            raise ValueError(f"encoder {name!r} registered twice")
        _REGISTRY[name] = EncoderEntry(name, backend, dim, weights_source, description, build, local_weights)
        return build

    return decorator


def _ensure_loaded() -> None:
    global _loaded
    if not _loaded:
        for module in _BACKEND_MODULES:
            importlib.import_module(module)
        _loaded = True


def registered_names() -> list[str]:
    _ensure_loaded()
    return sorted(_REGISTRY)


def list_encoders(pattern: str = "*") -> list[EncoderEntry]:
    """Registered encoders whose name matches the glob ``pattern`` (case-insensitive).

    ``timm:PATTERN`` and ``open_clip:PATTERN`` list the matching models of those
    libraries that have pretrained weights.
    """
    _ensure_loaded()
    if pattern.startswith("timm:"):
        from retbench.encoders.timm_models import list_timm

        return list_timm(pattern[len("timm:") :])
    if pattern.startswith("open_clip:"):
        from retbench.encoders.open_clip_models import list_open_clip

        return list_open_clip(pattern[len("open_clip:") :])
    pattern = pattern.lower()
    if not any(ch in pattern for ch in "*?["):
        pattern = f"*{pattern}*"
    return [_REGISTRY[n] for n in sorted(_REGISTRY) if fnmatch.fnmatchcase(n.lower(), pattern)]


def get_entry(spec: str) -> EncoderEntry:
    """The entry for a spec string.

    Raises:
        EncoderError: unknown name; the message suggests the closest known names.
    """
    _ensure_loaded()
    spec = spec.strip()
    if spec in _REGISTRY:
        return _REGISTRY[spec]
    if spec.startswith("timm:"):
        from retbench.encoders.timm_models import timm_entry

        return timm_entry(spec[len("timm:") :])
    if spec.startswith("open_clip:"):
        from retbench.encoders.open_clip_models import open_clip_entry

        return open_clip_entry(spec[len("open_clip:") :])
    close = difflib.get_close_matches(spec.lower(), [n.lower() for n in _REGISTRY], n=3, cutoff=0.5)
    close = [n for n in sorted(_REGISTRY) if n.lower() in close]
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise EncoderError(
        f"unknown encoder {spec!r}.{hint} Known: {', '.join(sorted(_REGISTRY))} "
        "(`retbench encoders` lists them); any timm model as timm:NAME, any open_clip model as open_clip:ARCH/TAG."
    )


def build_encoder(
    spec: str,
    *,
    weights: str | Path | None = None,
    random_init: bool = False,
    preprocess: str = "default",
    seed: int = 0,
    device: str = "cpu",
):
    """Build the encoder ``spec`` in eval mode on ``device``.

    Weights: ``weights`` (a local file) if given; else, only if ``random_init`` is
    explicitly True, random weights; else the pretrained weights from the local cache
    or a download. Never falls back to random weights.

    Raises:
        EncoderError: unknown spec, bad options, or a weights file that does not fit.
        WeightsUnavailableError: pretrained weights neither cached nor downloadable.
    """
    options = BuildOptions(
        weights=Path(weights).expanduser() if weights is not None else None,
        random_init=random_init,
        preprocess=preprocess,
        seed=seed,
    )
    entry = get_entry(spec)
    encoder = entry.build(entry.name, options)
    return encoder.to(device) if hasattr(encoder, "to") else encoder


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Make random initialisation inside the block reproducible without touching global RNG state."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
