"""Fast extraction modes: each stays close to exact fp32, has its own cache key, and the default is unchanged.

Tolerances (1 - cos of L2-normalised features, random-init models on small generated images):
channels_last fp32 and OpenVINO fp32 agree with eager fp32 to float rounding (< 1e-5 and
< 1e-4); bf16 (torch autocast or OpenVINO) stays within 1e-2 (measured ~1e-5 on
real photos; BENCHMARKS.md has the mAP cost with real weights). Reduced JPEG decoding leaves
images that are not at least twice the resize target bit-identical; on a large photo-like
JPEG it moves pixels by < 1 level on average (max <= 8) after the resize. Fast decoding's
torch resize stays within a quarter level of PIL's on average (max 8); with a crop, on CPUs
where torch uses its AVX2 kernels, within 2 levels on under 2% of the pixels.
"""

from __future__ import annotations

import builtins
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from retbench.datasets import load_dataset, load_rgb
from retbench.embeddings import EmbeddingStore, extract
from retbench.embeddings import loader as loader_module
from retbench.embeddings.runtimes import RuntimeConfig, resolve_runtime
from retbench.encoders import build_encoder
from retbench.encoders.preprocess import PreprocessConfig, geometry_transform, tensor_geometry_transform
from retbench.errors import EmbeddingError
from tests.conftest import make_dataset


def one_minus_cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(1.0 - np.sum(a.astype(np.float64) * b.astype(np.float64), axis=1)))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return load_dataset(make_dataset(tmp_path_factory.mktemp("speed") / "d", per_class=3, suffix=".jpg"))


@pytest.fixture(scope="module")
def resnet():
    return build_encoder("resnet18", random_init=True)


@pytest.fixture(scope="module")
def exact(dataset, resnet):
    """The reference: eager fp32, contiguous memory format, full decoding, no decoding threads."""
    return extract(dataset, resnet, num_workers=0, channels_last=False).vectors


def test_default_is_exact_fp32_with_channels_last_for_cnns(dataset, resnet, exact):
    cpu = torch.device("cpu")
    assert resolve_runtime(resnet, cpu) == RuntimeConfig("torch", "fp32", True, "cpu")
    vit = build_encoder("dinov2_vits14", random_init=True)
    assert resolve_runtime(vit, cpu) == RuntimeConfig("torch", "fp32", False, "cpu")  # a patch embedding is no CNN
    result = extract(dataset, resnet)
    assert result.runtime == {"runtime": "torch", "precision": "fp32", "channels_last": True, "device": "cpu",
                              "decode": "full"}  # fmt: skip
    np.testing.assert_allclose(result.vectors, exact, atol=1e-5)
    assert not resnet.channels_last  # the memory format is restored after the run


def test_decoding_threads_processes_and_inline_give_identical_pixels(dataset, resnet, exact):
    threads = extract(dataset, resnet, num_workers=2, batch_size=4, channels_last=False, parallel="threads").vectors
    processes = extract(dataset, resnet, num_workers=1, batch_size=4, channels_last=False, parallel="processes").vectors
    np.testing.assert_allclose(threads, exact, atol=1e-6)
    np.testing.assert_allclose(processes, exact, atol=1e-6)


def test_bf16_stays_close_to_fp32(dataset, resnet, exact):
    for channels_last in (False, True):
        bf16 = extract(dataset, resnet, precision="bf16", channels_last=channels_last).vectors
        assert one_minus_cos(bf16, exact) < 1e-2
        assert not np.array_equal(bf16, exact)  # it did run in bf16


def test_cache_key_differs_per_mode_and_is_stable(dataset, cache_dir):
    from retbench.embeddings.extraction import cache_material
    from retbench.embeddings.store import cache_key

    encoder = build_encoder("colorhist")
    cpu = torch.device("cpu")
    configs = [(resolve_runtime(encoder, cpu), "full"), (resolve_runtime(encoder, cpu, precision="bf16"), "full"),
               (resolve_runtime(encoder, cpu), "reduced"), (RuntimeConfig("torch", "fp32", True, "cpu"), "full"),
               (resolve_runtime(encoder, cpu), "fast")]  # fmt: skip
    keys = [cache_key(cache_material(dataset, encoder, config, decode=decode)) for config, decode in configs]
    assert len(set(keys)) == len(keys)

    store = EmbeddingStore(cache_dir)
    first = extract(dataset, encoder, num_workers=0, store=store, precision="bf16")
    again = extract(dataset, encoder, num_workers=0, store=store, precision="bf16")
    assert again.from_cache and again.cache_key == first.cache_key == keys[1]
    assert again.runtime["precision"] == "bf16"
    assert extract(dataset, encoder, num_workers=0, store=store).cache_key == keys[0]

    pytest.importorskip("openvino")
    openvino = cache_key(cache_material(dataset, encoder, RuntimeConfig("openvino", "fp32", False, "cpu")))
    assert openvino not in keys


def test_fast_decoding_is_keyed_by_the_cpu_instruction_set(dataset, monkeypatch):
    from retbench.embeddings.extraction import cache_material
    from retbench.embeddings.store import cache_key

    encoder = build_encoder("colorhist")
    config = resolve_runtime(encoder, torch.device("cpu"))
    before = {d: cache_key(cache_material(dataset, encoder, config, decode=d)) for d in ("full", "fast")}
    here = torch.backends.cpu.get_cpu_capability()
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "DEFAULT" if here != "DEFAULT" else "AVX2")
    after = {d: cache_key(cache_material(dataset, encoder, config, decode=d)) for d in ("full", "fast")}
    assert after["full"] == before["full"] and after["fast"] != before["fast"]


def test_invalid_modes_name_the_fix(dataset, resnet):
    with pytest.raises(EmbeddingError, match="--precision fp16 needs --device cuda"):
        extract(dataset, resnet, precision="fp16")
    with pytest.raises(EmbeddingError, match=r"--runtime must be one of \('torch', 'openvino'\), got 'onnx'"):
        extract(dataset, resnet, runtime="onnx")
    with pytest.raises(EmbeddingError, match=r"--decode must be one of \('full', 'reduced', 'fast'\), got 'draft'"):
        extract(dataset, resnet, decode="draft")
    with pytest.raises(EmbeddingError, match="--channels-last applies to --runtime torch"):
        extract(dataset, resnet, runtime="openvino", channels_last=True)


def test_missing_openvino_says_how_to_install(dataset, resnet, monkeypatch, tmp_path):
    real_import = builtins.__import__

    def no_openvino(name, *args, **kwargs):
        if name == "openvino" or name.startswith("openvino."):
            raise ImportError("No module named 'openvino'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_openvino)
    with pytest.raises(EmbeddingError, match=r"pip install 'retbench\[openvino\]'"):
        extract(dataset, resnet, runtime="openvino", export_dir=tmp_path)


def test_openvino_matches_torch_and_reuses_its_export(dataset, resnet, exact, tmp_path, monkeypatch):
    pytest.importorskip("openvino")
    from retbench.embeddings import openvino_runtime

    fp32 = extract(dataset, resnet, runtime="openvino", export_dir=tmp_path, batch_size=4)
    assert fp32.runtime["runtime"] == "openvino"
    assert one_minus_cos(fp32.vectors, exact) < 1e-4
    exported = list(tmp_path.glob("*/model.xml"))
    assert len(exported) == 1 and exported[0].with_suffix(".bin").stat().st_size > 40e6  # fp32 weights, not fp16

    def no_export(encoder):
        raise AssertionError("the cached export should have been reused")

    monkeypatch.setattr(openvino_runtime, "_convert", no_export)
    bf16 = extract(dataset, resnet, runtime="openvino", precision="bf16", export_dir=tmp_path)
    assert one_minus_cos(bf16.vectors, exact) < 1e-2
    assert not np.array_equal(bf16.vectors, fp32.vectors)


def _photo_like(path, size=(1600, 1200), seed=0):
    """A smooth image with edges and texture (a JPEG at quality 90), large enough for reduced decoding."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : size[1], 0 : size[0]].astype(np.float32)
    base = np.stack([128 + 100 * np.sin(x / 97 + c) * np.cos(y / 61 - c) for c in range(3)], axis=-1)
    base[300:700, 400:1000] = (230, 40, 60)
    pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, quality=90)


def test_reduced_decoding_only_shrinks_large_jpegs_and_stays_close(tmp_path, resnet):
    preprocess = resnet.preprocess  # resize 256 + crop 224
    transform = geometry_transform(preprocess)
    large = tmp_path / "large.jpg"
    _photo_like(large)
    reduced = loader_module.load_rgb_reduced(large, preprocess)
    assert reduced.size == (800, 600)  # 1/2 scale keeps >= 2 x the 341 x 256 resize output
    full_pixels, reduced_pixels = transform(load_rgb(large)).int(), transform(reduced).int()
    difference = (full_pixels - reduced_pixels).abs()
    assert 0 < difference.float().mean() < 1.0 and difference.max() <= 8

    small = tmp_path / "small.jpg"  # 400 x 533, like clothing10: less than 2 x the target, decoded in full
    _photo_like(small, size=(400, 533))
    assert torch.equal(transform(loader_module.load_rgb_reduced(small, preprocess)), transform(load_rgb(small)))
    png = tmp_path / "large.png"
    Image.open(large).save(png)
    assert loader_module.load_rgb_reduced(png, preprocess).size == (1600, 1200)


def test_reduced_decoding_in_extract(tmp_path, resnet):
    root = make_dataset(tmp_path / "d", per_class=1, suffix=".jpg")
    for i, path in enumerate(sorted((root / "images").rglob("*.jpg"))):
        _photo_like(path, seed=i)
    dataset = load_dataset(root)
    full = extract(dataset, resnet, num_workers=0)
    reduced = extract(dataset, resnet, num_workers=0, decode="reduced")
    assert reduced.runtime["decode"] == "reduced"
    assert 0 < one_minus_cos(reduced.vectors, full.vectors) < 1e-2


def test_cli_flags_reach_the_extraction_and_its_record(tmp_path):
    import json

    from retbench.cli import main
    from retbench.runner import ExtractOptions

    root = make_dataset(tmp_path / "d", per_class=2)
    out = tmp_path / "features.npy"
    code = main(["embed", str(root), "--encoder", "colorhist", "--out", str(out), "--device", "cpu", "--workers", "0",
                 "--precision", "bf16", "--no-channels-last", "--decode", "reduced", "--cache-dir", str(tmp_path / "c")])  # fmt: skip
    assert code == 0
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["runtime"] == {"runtime": "torch", "precision": "bf16", "channels_last": False, "device": "cpu",
                                  "decode": "reduced"}  # fmt: skip
    recorded = ExtractOptions(runtime="openvino", precision="bf16", decode="reduced").to_dict()
    assert (recorded["runtime"], recorded["precision"], recorded["channels_last"], recorded["decode"]) == (
        "openvino", "bf16", None, "reduced")


def _edged_photo(path, size, seed=0):
    """A photo-like JPEG with sharp edges inside it (a red block, a dark bar), any size."""
    rng = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([128 + 100 * np.sin(x / 37 + c) * np.cos(y / 23 - c) for c in range(3)], axis=-1)
    base[height // 4 : height // 2, width // 5 : 3 * width // 5] = (230, 40, 60)
    base[2 * height // 3 : 2 * height // 3 + 3, :] = 10
    pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, quality=90)


@pytest.mark.parametrize("resize, crop, interpolation, size", [
    (256, (224, 224), "bilinear", (400, 533)),  # torchvision ImageNet eval, on a clothing10-like photo
    (224, (224, 224), "bicubic", (533, 400)),  # CLIP / timm style, landscape
    (200, (224, 240), "bicubic", (400, 533)),  # crop larger than the resized image: zero padding
])
def test_fast_resize_stays_close_to_pil_with_a_crop(tmp_path, resize, crop, interpolation, size):
    config = PreprocessConfig(resize=resize, crop=crop, interpolation=interpolation, mean=(0, 0, 0), std=(1, 1, 1))
    _edged_photo(tmp_path / "photo.jpg", size)
    image = load_rgb(tmp_path / "photo.jpg")
    reference, fast = geometry_transform(config)(image), tensor_geometry_transform(config)(image)
    assert fast.dtype == torch.uint8 and fast.shape == reference.shape and fast.is_contiguous()
    difference = (reference.int() - fast.int()).abs()
    assert difference.max() <= 8 and difference.float().mean() < 0.25  # a shifted or wrong filter: 0.7-4.7
    if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):  # the generic kernel rounds apart more often
        assert difference.max() <= 2
        assert (difference > 0).float().mean() < 0.02
    if crop == (224, 240):  # wider than the 200 x 266 resize: a black border of 20 columns in both
        assert fast[:, :, :3].max() == 0 and reference[:, :, :3].max() == 0


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_fast_squash_stays_close_to_pil(tmp_path, interpolation):
    """The study's squash (no crop) rounds apart more often (BENCHMARKS.md: up to 20% of an image's
    pixels, by up to 6 levels); a wrong size, offset or filter would differ by far more."""
    config = PreprocessConfig(resize=(224, 224), crop=None, interpolation=interpolation, mean=(0, 0, 0),
                              std=(1, 1, 1))  # fmt: skip
    _edged_photo(tmp_path / "photo.jpg", (400, 533))
    image = load_rgb(tmp_path / "photo.jpg")
    difference = (geometry_transform(config)(image).int() - tensor_geometry_transform(config)(image).int()).abs()
    assert difference.shape == (3, 224, 224)
    assert difference.max() <= 8 and difference.float().mean() < 0.25


def test_fast_nearest_stays_with_pil_and_rgb_is_required(tmp_path):
    # 256 -> 224 puts pixel centres exactly on boundaries, where torch's nearest-exact picks other pixels
    config = PreprocessConfig(resize=(224, 224), crop=None, interpolation="nearest", mean=(0, 0, 0), std=(1, 1, 1))
    _edged_photo(tmp_path / "photo.jpg", (256, 256))
    image = load_rgb(tmp_path / "photo.jpg")
    assert torch.equal(geometry_transform(config)(image), tensor_geometry_transform(config)(image))
    bilinear = PreprocessConfig(resize=256, crop=(224, 224), interpolation="bilinear", mean=(0, 0, 0), std=(1, 1, 1))
    with pytest.raises(ValueError, match="needs an RGB image, got mode 'L'"):
        tensor_geometry_transform(bilinear)(image.convert("L"))


def test_fast_decoding_in_extract(tmp_path, resnet):
    root = make_dataset(tmp_path / "d", per_class=1, suffix=".jpg")
    for i, path in enumerate(sorted((root / "images").rglob("*.jpg"))):
        _photo_like(path, size=(400, 533), seed=i)
    dataset = load_dataset(root)
    full = extract(dataset, resnet, num_workers=2)
    fast = extract(dataset, resnet, num_workers=2, decode="fast")
    assert fast.runtime["decode"] == "fast"
    assert 0 < one_minus_cos(fast.vectors, full.vectors) < 1e-3


def test_openvino_conversion_sends_no_usage_reports(tmp_path, monkeypatch):
    ov = pytest.importorskip("openvino")
    pytest.importorskip("openvino_telemetry")
    from types import SimpleNamespace

    from openvino.tools.ovc.telemetry_utils import init_ovc_telemetry

    from retbench.embeddings import openvino_runtime

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    config = PreprocessConfig(resize=(16, 16), crop=None, interpolation="bilinear", mean=(0, 0, 0), std=(1, 1, 1))
    monkeypatch.setenv("HOME", str(tmp_path))  # where OpenVINO keeps its telemetry client id and counters
    telemetry = init_ovc_telemetry()
    if not hasattr(telemetry, "consent") or not hasattr(telemetry, "sender"):
        pytest.skip("OpenVINO's conversion uses its telemetry stub here: nothing to switch off")
    sent = []
    saved = telemetry.consent, telemetry.sender
    telemetry.consent = True  # as on a machine without an opt-out file, outside CI
    telemetry.sender = SimpleNamespace(send=lambda backend, message: sent.append(message),
                                       force_shutdown=lambda timeout: None)  # fmt: skip
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # OpenVINO traces with TorchScript, deprecated in torch
            ov.convert_model(model, example_input=torch.zeros(1, 3, 16, 16))  # the control: OpenVINO reports
        assert sent, "OpenVINO's conversion no longer reports through this object: revisit _usage_telemetry_off"
        sent.clear()
        openvino_runtime._convert(SimpleNamespace(model=model, preprocess=config))
        assert sent == [] and telemetry.consent is True  # nothing reported, the setting restored
    finally:
        telemetry.consent, telemetry.sender = saved
