"""Where the libraries' downloaders keep pretrained files (to report local availability)."""

from __future__ import annotations

from pathlib import Path

HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def hf_cached_file(repo_id: str, filenames: tuple[str, ...] = HF_WEIGHT_FILES) -> str | None:
    """Path of the first of ``filenames`` cached locally for a Hugging Face repo, or None."""
    from huggingface_hub import try_to_load_from_cache

    repo_id = repo_id.rstrip("/")
    for filename in filenames:
        found = try_to_load_from_cache(repo_id, filename)
        if isinstance(found, str) and Path(found).is_file():
            return found
    return None
