from __future__ import annotations

import numpy as np
import pytest
import torch

import retbench
from retbench.datasets import load_dataset
from retbench.embeddings import EmbeddingStore, extract
from retbench.embeddings import extraction as extract_module
from retbench.encoders import build_encoder
from retbench.errors import BadImagesError, EmbeddingError
from tests.conftest import make_dataset


class CountingEncoder:
    """Wraps an encoder and counts the images it embeds."""

    def __init__(self, inner):
        self.inner = inner
        self.seen = 0
        for attr in ("name", "dim", "preprocess", "weights", "device", "describe"):
            setattr(self, attr, getattr(inner, attr))

    def embed(self, batch):
        self.seen += len(batch)
        return self.inner.embed(batch)


@pytest.fixture
def dataset(tmp_path):
    return load_dataset(make_dataset(tmp_path / "d", per_class=5))


def test_rows_are_unit_float32_in_list_order(dataset):
    encoder = build_encoder("colorhist")
    result = extract(dataset, encoder, batch_size=4, num_workers=0)
    assert result.vectors.shape == (15, 512) and result.vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(result.vectors, axis=1), 1, atol=1e-6)
    single = extract(dataset.subset([7]), encoder, num_workers=0).vectors
    np.testing.assert_array_equal(single[0], result.vectors[7])


def test_workers_and_batch_size_do_not_change_the_numbers(dataset):
    encoder = build_encoder("resnet18", random_init=True)
    a = extract(dataset, encoder, batch_size=15, num_workers=0).vectors
    b = extract(dataset, encoder, batch_size=4, num_workers=2).vectors
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_cache_is_reused_and_keyed_on_what_changes_the_output(dataset, cache_dir):
    store = EmbeddingStore(cache_dir)
    encoder = CountingEncoder(build_encoder("colorhist"))
    first = extract(dataset, encoder, num_workers=0, store=store)
    assert not first.from_cache and encoder.seen == 15
    second = extract(dataset, encoder, num_workers=0, store=store)
    assert second.from_cache and encoder.seen == 15
    np.testing.assert_array_equal(first.vectors, second.vectors)
    assert second.cache_key == first.cache_key

    other_weights = build_encoder("resnet18", random_init=True, seed=1)
    key_a = extract(dataset, other_weights, num_workers=0, store=store).cache_key
    key_b = extract(dataset, build_encoder("resnet18", random_init=True, seed=2), num_workers=0, store=store).cache_key
    key_c = extract(dataset, build_encoder("resnet18", random_init=True, seed=1, preprocess="study"), num_workers=0,
                    store=store).cache_key  # fmt: skip
    assert len({key_a, key_b, key_c}) == 3

    # a changed image changes the manifest, so the cache is not used
    from tests.conftest import make_image

    make_image(dataset.image_path(3), (0, 0, 0), 99, size=(70, 70))
    third = extract(dataset, encoder, num_workers=0, store=store)
    assert not third.from_cache and third.cache_key != first.cache_key


def test_interrupted_run_resumes_without_redoing_finished_chunks(dataset, cache_dir, monkeypatch):
    monkeypatch.setattr(extract_module, "CHUNK_SIZE", 4)
    store = EmbeddingStore(cache_dir)
    encoder = CountingEncoder(build_encoder("colorhist"))
    calls = []

    def interrupt(n):
        calls.append(n)
        if sum(calls) >= 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract(dataset, encoder, batch_size=2, num_workers=0, store=store, progress=interrupt)
    assert encoder.seen == 8  # two chunks of 4 finished and saved
    resumed = CountingEncoder(build_encoder("colorhist"))
    result = extract(dataset, resumed, batch_size=2, num_workers=0, store=store)
    assert resumed.seen == 15 - 8
    reference = extract(dataset, build_encoder("colorhist"), num_workers=0).vectors
    np.testing.assert_array_equal(result.vectors, reference)
    entry = store.entry(result.cache_key)
    assert not list(entry.directory.glob("part-*.npz"))  # chunks merged into vectors.npy


def test_every_bad_image_is_named(tmp_path, cache_dir):
    root = make_dataset(tmp_path / "d", per_class=3)
    (root / "images" / "red" / "001.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (root / "images" / "blue" / "002.png").write_bytes(b"")
    with pytest.raises(BadImagesError) as info:
        retbench.embed(root, "colorhist", cache_dir=cache_dir, num_workers=0)
    message = str(info.value)
    assert "2 image(s) of dataset 'd' could not be decoded" in message
    assert "list_of_images.txt:2: red/001.png" in message
    assert "list_of_images.txt:9: blue/002.png" in message
    assert "--skip-bad" in message
    assert [b.path for b in info.value.bad] == ["red/001.png", "blue/002.png"]

    kept = retbench.embed(root, "colorhist", cache_dir=cache_dir, num_workers=0, skip_bad=True)
    assert kept.shape == (7, 512) and np.isfinite(kept).all()


def test_truncated_jpeg_is_a_bad_image(tmp_path):
    root = make_dataset(tmp_path / "d", per_class=2, suffix=".jpg")
    data = (root / "images" / "green" / "000.jpg").read_bytes()
    (root / "images" / "green" / "000.jpg").write_bytes(data[: len(data) // 2])
    result = extract(load_dataset(root), build_encoder("colorhist"), num_workers=0)
    assert [b.path for b in result.bad] == ["green/000.jpg"]
    assert np.isnan(result.vectors[result.bad[0].index]).all()  # NaN, never a zero row
    assert result.good_rows.tolist() == [0, 1, 3, 4, 5]


class NaNEncoder(CountingEncoder):
    def embed(self, batch):
        out = self.inner.embed(batch).clone()
        out[1] = float("nan")
        return out


def test_non_finite_features_are_an_error_naming_the_image(dataset):
    encoder = NaNEncoder(build_encoder("colorhist"))
    with pytest.raises(EmbeddingError, match=r"non-finite or all-zero features for 1 image\(s\): red/001.png \(.*list_of_images.txt:2\)"):
        extract(dataset, encoder, batch_size=4, num_workers=0)


def test_precision_is_validated(dataset):
    with pytest.raises(EmbeddingError, match="--precision fp16 needs --device cuda"):
        extract(dataset, build_encoder("colorhist"), precision="fp16", num_workers=0)
    with pytest.raises(EmbeddingError, match="--precision must be one of"):
        extract(dataset, build_encoder("colorhist"), precision="int3", num_workers=0)


def test_bf16_stays_close_to_fp32(dataset):
    encoder = build_encoder("resnet18", random_init=True)
    fp32 = extract(dataset, encoder, num_workers=0).vectors
    bf16 = extract(dataset, encoder, num_workers=0, precision="bf16").vectors
    cosine = (fp32 * bf16).sum(1)
    assert cosine.min() > 0.99


def test_cuda_device_refused_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    from retbench.embeddings import resolve_device

    with pytest.raises(EmbeddingError, match="CUDA is not available"):
        resolve_device("cuda")
