"""Encoders: the registry of spec strings, backends (torchvision, timm, open_clip, builtin), weights."""

from retbench.encoders.base import Encoder, TorchEncoder, WeightsRecord
from retbench.encoders.preprocess import PreprocessConfig, geometry_transform, normalize_batch
from retbench.encoders.registry import (
    BuildOptions,
    EncoderEntry,
    build_encoder,
    get_entry,
    list_encoders,
    register_encoder,
    registered_names,
)

__all__ = [
    "BuildOptions",
    "Encoder",
    "EncoderEntry",
    "PreprocessConfig",
    "TorchEncoder",
    "WeightsRecord",
    "build_encoder",
    "geometry_transform",
    "get_entry",
    "list_encoders",
    "normalize_batch",
    "register_encoder",
    "registered_names",
]
