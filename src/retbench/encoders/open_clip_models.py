"""open_clip-backed encoders: CLIP ViT-B/32 (OpenAI weights, QuickGELU) and ``open_clip:ARCH/TAG``.

The encoder is the image tower: ``model.visual(x)`` is exactly ``model.encode_image(x)``
(projected, before normalisation); the text tower is dropped after loading.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Iterator
from pathlib import Path

from retbench.encoders.base import TorchEncoder, WeightsRecord
from retbench.encoders.hub_cache import hf_cached_file
from retbench.encoders.preprocess import PreprocessConfig, study_variant
from retbench.encoders.registry import BuildOptions, EncoderEntry, register_encoder, seeded
from retbench.encoders.weights import (
    check_weights_file,
    ensure_download_possible,
    file_sha256,
    load_strict,
    read_state_dict,
)
from retbench.errors import EncoderError, WeightsUnavailableError

logger = logging.getLogger(__name__)

HF_URL = "https://huggingface.co"
_OPENAI_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")


def _pretrained_cfg(arch: str, tag: str) -> dict:
    import open_clip

    cfg = open_clip.get_pretrained_cfg(arch, tag)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(arch)
        raise EncoderError(
            f"open_clip has no pretrained tag {tag!r} for {arch!r}; known tags: {', '.join(tags) or 'none'}"
        )
    return cfg


def _local_file(arch: str, tag: str) -> str | None:
    cfg = _pretrained_cfg(arch, tag)
    if cfg.get("hf_hub"):
        repo, filename = os.path.split(cfg["hf_hub"])  # "org/model/" or "org/model/file.bin"
        found = hf_cached_file(repo, (filename,) if filename else ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"))
        if found:
            return found
    if cfg.get("url"):
        path = Path("~/.cache/clip").expanduser() / os.path.basename(cfg["url"])
        if path.is_file():
            return str(path)
    return None


def _preprocess(model, arch: str, tag: str | None) -> PreprocessConfig:
    """open_clip's own eval transform for this model (and tag), as a config."""
    cfg = dict(model.visual.preprocess_cfg)
    if tag:
        pretrained = _pretrained_cfg(arch, tag)
        cfg.update({k: pretrained[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in pretrained})
    size = cfg["size"] if isinstance(cfg["size"], (tuple, list)) else (cfg["size"], cfg["size"])
    mode = cfg.get("resize_mode", "shortest")
    if mode == "shortest" and size[0] == size[1]:
        resize, crop = size[0], (size[0], size[1])
    elif mode == "squash":
        resize, crop = (size[0], size[1]), None
    else:
        raise EncoderError(f"open_clip model {arch!r} uses resize mode {mode!r} at {size}, which retbench does not reproduce")
    return PreprocessConfig(resize, crop, cfg.get("interpolation", "bicubic"), cfg["mean"], cfg["std"], f"open_clip-{arch}")


@contextlib.contextmanager
def _quiet_random_init_warning() -> Iterator[None]:
    """Hide open_clip's "initialized randomly" warning: weights are loaded right after creation."""

    def drop(record: logging.LogRecord) -> bool:
        return "No pretrained weights loaded" not in record.getMessage()

    root = logging.getLogger()
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)


def load_clip_weights(model, path: Path, spec: str) -> None:
    """Load an open_clip checkpoint or an OpenAI one (TorchScript archive or state dict) strictly."""
    state = read_state_dict(path, allow_torchscript=True)
    for key in _OPENAI_EXTRA_KEYS:
        state.pop(key, None)
    from open_clip.convert import convert_state_dict
    from open_clip.model import convert_to_custom_text_state_dict

    state = convert_state_dict(model, state)
    if "positional_embedding" in state and not hasattr(model, "positional_embedding"):
        state = convert_to_custom_text_state_dict(state)
    if "logit_scale" in state and state["logit_scale"].ndim != model.logit_scale.ndim:
        state["logit_scale"] = state["logit_scale"].reshape(model.logit_scale.shape)
    load_strict(model, state, encoder=spec, source=str(path))


def _build_clip(spec: str, arch: str, tag: str | None, options: BuildOptions) -> TorchEncoder:
    import open_clip

    with seeded(options.seed), _quiet_random_init_warning():
        model = open_clip.create_model(arch, pretrained=None, device="cpu")
    if options.weights is not None:
        path = check_weights_file(options.weights, spec)
        load_clip_weights(model, path, spec)
        record = WeightsRecord("file", str(path), sha256=file_sha256(path))
    elif options.random_init:
        record = WeightsRecord("random-init", f"open_clip {arch}", seed=options.seed)
    else:
        if tag is None:
            raise EncoderError(f"{spec!r} names no pretrained tag: use open_clip:{arch}/TAG or pass --weights FILE")
        cfg = _pretrained_cfg(arch, tag)
        local = _local_file(arch, tag)
        if local is None:
            urls = [HF_URL] if cfg.get("hf_hub") else []
            urls += [cfg["url"]] if cfg.get("url") else []
            ensure_download_possible(
                spec,
                f"open_clip {arch} / {tag}",
                urls,
                local_hint="in the Hugging Face cache, ~/.cache/huggingface/hub",
                file_hint=cfg.get("url") or f"{HF_URL}/{cfg.get('hf_hub', '')}",
            )
            try:
                local = open_clip.download_pretrained(cfg)
            except Exception as exc:
                raise WeightsUnavailableError(
                    f"downloading the weights of {spec!r} failed: {exc}. Pass a local file with --weights FILE."
                ) from exc
            if not local:
                raise WeightsUnavailableError(f"open_clip found no download source for {spec!r}; pass --weights FILE")
        load_clip_weights(model, Path(local), spec)
        record = WeightsRecord("pretrained", f"open_clip {arch}/{tag} ({cfg.get('hf_hub') or cfg.get('url')})")
    default = _preprocess(model, arch, tag)
    preprocess = default if options.preprocess == "default" else study_variant(default)
    visual = model.visual
    dim = int(visual.output_dim)
    del model  # keep only the image tower
    return TorchEncoder(spec, visual, dim, preprocess, record, backend="open_clip", architecture=arch)


@register_encoder(
    "clip_vitb32",
    backend="open_clip",
    dim=512,
    weights_source="OpenAI CLIP (open_clip ViT-B-32-quickgelu / openai)",
    description="CLIP ViT-B/32 image tower (QuickGELU), projected 512-d (encode_image)",
    local_weights=lambda: _local_file("ViT-B-32-quickgelu", "openai"),
)
def _build_clip_vitb32(name: str, options: BuildOptions) -> TorchEncoder:
    return _build_clip(name, "ViT-B-32-quickgelu", "openai", options)


def _split(spec: str) -> tuple[str, str | None]:
    arch, _, tag = spec.partition("/")
    return arch, (tag or None)


def open_clip_entry(spec: str) -> EncoderEntry:
    """A dynamic entry for ``open_clip:ARCH/TAG`` (TAG may be omitted with --weights or --random-init)."""
    import difflib

    import open_clip

    arch, tag = _split(spec)
    models = open_clip.list_models()
    if arch not in models:
        close = difflib.get_close_matches(arch, models, n=3, cutoff=0.6)
        hint = f" Did you mean: {', '.join('open_clip:' + c for c in close)}?" if close else ""
        raise EncoderError(f"unknown open_clip architecture {arch!r}.{hint} `retbench encoders 'open_clip:*'` lists them.")
    if tag is not None:
        _pretrained_cfg(arch, tag)  # validates the tag early, listing the known ones

    def build(name: str, options: BuildOptions) -> TorchEncoder:
        return _build_clip(name, arch, tag, options)

    return EncoderEntry(
        name=f"open_clip:{spec}",
        backend="open_clip",
        dim=None,
        weights_source=f"open_clip pretrained tag {tag}" if tag else "none (pass --weights)",
        description=f"open_clip {arch} image tower (encode_image)",
        build=build,
        local_weights=(lambda: _local_file(arch, tag)) if tag else (lambda: None),
    )


def list_open_clip(pattern: str) -> list[EncoderEntry]:
    """Entries for the open_clip (arch, tag) pairs whose ``ARCH/TAG`` matches a glob."""
    import fnmatch

    import open_clip

    pattern = pattern or "*"
    if not any(ch in pattern for ch in "*?["):
        pattern = f"*{pattern}*"
    pairs = [f"{arch}/{tag}" for arch, tag in open_clip.list_pretrained()]
    return [open_clip_entry(p) for p in pairs if fnmatch.fnmatchcase(p.lower(), pattern.lower())]
