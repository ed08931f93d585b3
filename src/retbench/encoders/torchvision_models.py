"""torchvision ResNets with fc = identity (the reference study's ResNet18/34)."""

from __future__ import annotations

import logging
from pathlib import Path

from retbench.encoders.base import TorchEncoder, WeightsRecord
from retbench.encoders.preprocess import IMAGENET_MEAN, IMAGENET_STD, PreprocessConfig, study_variant
from retbench.encoders.registry import BuildOptions, register_encoder, seeded
from retbench.encoders.weights import (
    check_weights_file,
    ensure_download_possible,
    file_sha256,
    load_strict,
    read_state_dict,
)
from retbench.errors import WeightsUnavailableError

logger = logging.getLogger(__name__)

# The weights' own eval transform (torchvision ImageClassification for IMAGENET1K_V1).
TORCHVISION_IMAGENET = PreprocessConfig(
    resize=256, crop=(224, 224), interpolation="bilinear", mean=IMAGENET_MEAN, std=IMAGENET_STD, name="torchvision-imagenet"
)

# name -> (torchvision builder, weights enum name, IMAGENET1K_V1 URL, dim)
RESNETS = {
    "resnet18": ("resnet18", "ResNet18_Weights", "https://download.pytorch.org/models/resnet18-f37072fd.pth", 512),
    "resnet34": ("resnet34", "ResNet34_Weights", "https://download.pytorch.org/models/resnet34-b627a593.pth", 512),
    "resnet50": ("resnet50", "ResNet50_Weights", "https://download.pytorch.org/models/resnet50-0676ba61.pth", 2048),
}


def torch_hub_checkpoint(url: str) -> Path:
    """Where torch.hub caches the file behind ``url``."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def _cached(url: str):
    def local_weights() -> str | None:
        path = torch_hub_checkpoint(url)
        return str(path) if path.is_file() else None

    return local_weights


def _build_resnet(name: str, options: BuildOptions) -> TorchEncoder:
    import torch
    import torchvision

    builder, weights_enum, url, dim = RESNETS[name]
    with seeded(options.seed):
        model = getattr(torchvision.models, builder)(weights=None)
    model.fc = torch.nn.Identity()

    if options.weights is not None:
        path = check_weights_file(options.weights, name)
        state = {k: v for k, v in read_state_dict(path).items() if not k.startswith("fc.")}
        load_strict(model, state, encoder=name, source=str(path))
        record = WeightsRecord("file", str(path), sha256=file_sha256(path))
    elif options.random_init:
        record = WeightsRecord("random-init", f"torchvision.models.{builder}", seed=options.seed)
    else:
        state = _pretrained_state(name, weights_enum, url)
        load_strict(model, {k: v for k, v in state.items() if not k.startswith("fc.")}, encoder=name, source=url)
        record = WeightsRecord("pretrained", f"torchvision {weights_enum}.IMAGENET1K_V1 ({url})")

    preprocess = TORCHVISION_IMAGENET if options.preprocess == "default" else study_variant(TORCHVISION_IMAGENET)
    return TorchEncoder(name, model, dim, preprocess, record, backend="torchvision", architecture=builder)


def _pretrained_state(name: str, weights_enum: str, url: str) -> dict:
    import torchvision

    local = torch_hub_checkpoint(url)
    if not local.is_file():
        ensure_download_possible(
            name,
            f"torchvision {weights_enum}.IMAGENET1K_V1",
            [url],
            local_hint=f"in {local.parent}",
            file_hint=url,
        )
    try:
        return getattr(torchvision.models, weights_enum).IMAGENET1K_V1.get_state_dict(progress=True, check_hash=True)
    except Exception as exc:
        raise WeightsUnavailableError(
            f"downloading the weights of {name!r} from {url} failed ({type(exc).__name__}: {exc}). "
            f"Download the file elsewhere and pass it with --weights FILE, or place it in {local.parent}."
        ) from exc


for _name, (_builder, _enum, _url, _dim) in RESNETS.items():
    register_encoder(
        _name,
        backend="torchvision",
        dim=_dim,
        weights_source=f"torchvision {_enum}.IMAGENET1K_V1",
        description=f"torchvision {_builder}, fc = identity, global-average-pooled features",
        local_weights=_cached(_url),
    )(_build_resnet)
