"""Reading weights files and deciding whether a download can be attempted.

Files are read with ``torch.load(weights_only=True)`` (no pickled code runs) or
safetensors; OpenAI's CLIP TorchScript archives go through ``torch.jit.load``, which
restores tensors and TorchScript code but never arbitrary Python objects.
"""

from __future__ import annotations

import hashlib
import os
import socket
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import torch

from retbench.environment import offline_mode
from retbench.errors import EncoderError, WeightsUnavailableError

_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "module")
_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's content (identifies a weights file in results and caches)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def check_weights_file(path: str | os.PathLike, encoder: str) -> Path:
    """The weights file as a Path, or an :class:`EncoderError` saying it is missing."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise EncoderError(f"--weights {path}: no such file (the weights file for encoder {encoder!r})")
    return path


def is_torchscript_archive(path: Path) -> bool:
    """True for a TorchScript zip (e.g. OpenAI's original ``ViT-B-32.pt``)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("constants.pkl") or "/code/" in name for name in archive.namelist())


def read_state_dict(path: Path, *, allow_torchscript: bool = False) -> dict[str, torch.Tensor]:
    """Load a state dict from ``.safetensors``, a ``torch.save`` file or (optionally) TorchScript.

    Unwraps ``{"state_dict": ...}``-style checkpoints and strips a DDP ``module.`` prefix.

    Raises:
        EncoderError: the file is not a loadable state dict.
    """
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            checkpoint = load_file(str(path), device="cpu")
        elif allow_torchscript and is_torchscript_archive(path):
            checkpoint = torch.jit.load(str(path), map_location="cpu").state_dict()
        else:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types here; all mean "not a weights file we can read"
        raise EncoderError(
            f"cannot read weights file {path}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}\n"
            "Expected a state dict saved with torch.save (.pth/.pt/.bin) or a .safetensors file."
        ) from exc
    for key in _WRAPPER_KEYS:
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    if not isinstance(checkpoint, dict) or not all(isinstance(k, str) for k in checkpoint):
        raise EncoderError(f"weights file {path} does not hold a state dict (got {type(checkpoint).__name__})")
    if checkpoint and all(k.startswith("module.") for k in checkpoint):
        checkpoint = {k[len("module.") :]: v for k, v in checkpoint.items()}
    return checkpoint


def load_strict(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], *, encoder: str, source: str) -> None:
    """``model.load_state_dict(strict=True)`` with an error that names what did not match."""
    result = model.load_state_dict(state_dict, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise EncoderError(
            f"weights from {source} do not match encoder {encoder!r}: "
            f"{len(result.missing_keys)} missing key(s) {result.missing_keys[:5]}, "
            f"{len(result.unexpected_keys)} unexpected key(s) {result.unexpected_keys[:5]}. "
            "Is it a checkpoint of another architecture?"
        )


def ensure_download_possible(encoder: str, description: str, urls: list[str], local_hint: str, file_hint: str) -> None:
    """Raise :class:`WeightsUnavailableError` at once when a download cannot work.

    Checked before handing over to the library's downloader (which may retry for a
    minute): offline mode, then whether any download host resolves and accepts a TCP
    connection within a few seconds. With a proxy configured the probe is skipped.
    """
    reason = None
    if offline_mode():
        reason = "offline mode is on (RETBENCH_OFFLINE or HF_HUB_OFFLINE)"
    elif not any(os.environ.get(name) for name in _PROXY_VARIABLES):
        hosts = sorted({urlparse(url).hostname for url in urls if urlparse(url).hostname})
        if hosts and not any(_host_reachable(host) for host in hosts):
            reason = f"no network connection to {', '.join(hosts)}"
    if reason:
        raise WeightsUnavailableError(weights_help(encoder, description, reason, local_hint, file_hint))


def weights_help(encoder: str, description: str, reason: str, local_hint: str, file_hint: str) -> str:
    """The one-paragraph explanation of how to supply weights for ``encoder``."""
    return (
        f"Pretrained weights for encoder {encoder!r} ({description}) are not available: {reason}. "
        f"With a network connection, run the same command once and the weights are downloaded and cached "
        f"({local_hint}). Offline, copy the upstream file ({file_hint}) to this machine and pass it with "
        f"--weights FILE (Python: weights=FILE), or place it in that cache. For tests and speed runs only, "
        f"--random-init uses random weights of the same architecture (its retrieval numbers are meaningless)."
    )


def _host_reachable(host: str, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False
