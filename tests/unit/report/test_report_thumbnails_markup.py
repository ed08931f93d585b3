"""Thumbnails (made once, keyed by path + size + mtime) and the escaping helpers."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from retbench.report.markup import attr_json, esc, heat, script_json
from retbench.report.thumbnails import ThumbnailCache, make_thumbnail


def write_jpeg(path, size=(640, 480), colour=(200, 30, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, quality=90)
    return path


def test_thumbnail_is_a_small_jpeg_keeping_the_aspect(tmp_path):
    data = make_thumbnail(write_jpeg(tmp_path / "a.jpg", (1000, 500)), size=128)
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG" and image.size == (128, 64)
    assert len(data) < 10_000


def test_transparent_images_are_flattened_on_white(tmp_path):
    Image.new("RGBA", (64, 64), (0, 0, 0, 0)).save(tmp_path / "t.png")
    with Image.open(io.BytesIO(make_thumbnail(tmp_path / "t.png"))) as image:
        assert np.asarray(image).mean() > 240


def test_cache_makes_each_thumbnail_once_and_notices_a_changed_file(tmp_path):
    image = write_jpeg(tmp_path / "img" / "a.jpg")
    first = ThumbnailCache(tmp_path / "cache")
    data = first.get(image)
    assert data and first.made == 1 and first.hits == 0
    assert len(list((tmp_path / "cache").rglob("*.jpg"))) == 1
    second = ThumbnailCache(tmp_path / "cache")  # a later report: read from disk, not decoded
    assert second.get(image) == data and second.made == 0 and second.hits == 1
    write_jpeg(image, colour=(10, 200, 10))
    os.utime(image, ns=(1, 2_000_000_000))
    third = ThumbnailCache(tmp_path / "cache")
    assert third.get(image) != data and third.made == 1
    other_size = ThumbnailCache(tmp_path / "cache", size=64)
    assert other_size.get(image) != data and other_size.made == 1


def test_cache_gives_none_for_missing_or_broken_images_and_survives_a_bad_cache(tmp_path, caplog):
    cache = ThumbnailCache(tmp_path / "cache")
    assert cache.get(tmp_path / "nope.jpg") is None
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not a jpeg")
    assert cache.get(broken) is None
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    unwritable = ThumbnailCache(blocker / "cache")
    assert unwritable.get(write_jpeg(tmp_path / "ok.jpg")) is not None
    truncated = ThumbnailCache(tmp_path / "cache2")
    image = write_jpeg(tmp_path / "b.jpg")
    good = truncated.get(image)
    entry = next((tmp_path / "cache2").rglob("*.jpg"))
    entry.write_bytes(good[: len(good) // 2])  # a half-written entry is remade, not served
    again = ThumbnailCache(tmp_path / "cache2")
    assert again.get(image) == good and again.made == 1


def test_prefetch_in_threads_equals_one_by_one(tmp_path):
    images = [write_jpeg(tmp_path / f"{i}.jpg", colour=(i * 20, 50, 90)) for i in range(10)]
    parallel = ThumbnailCache(None)
    parallel.prefetch(images + [tmp_path / "missing.jpg"], workers=4)
    serial = ThumbnailCache(None)
    assert [parallel.get(p) for p in images] == [serial.get(p) for p in images]
    assert parallel.get(tmp_path / "missing.jpg") is None


@pytest.mark.parametrize("text", ["<script>alert(1)</script>", 'a&b"c', "it's", "靴 chaussure é"])
def test_esc_makes_text_inert(text):
    out = esc(text)
    assert "<" not in out and '"' not in out and "'" not in out
    import html

    assert html.unescape(out) == text
    assert esc("a\x00b") == "a\ufffdb"


def test_script_json_cannot_close_the_script_or_open_a_comment():
    value = {"x": "</script><script>alert(1)</script>", "y": "<!-- a & b -->", "z": "\u2028"}
    out = script_json(value)
    assert "</" not in out and "<!--" not in out and "<" not in out and "\u2028" not in out
    assert json.loads(out) == value


def test_attr_json_round_trips_through_an_attribute():
    import html

    value = {"name": 'a&b"c <x>'}
    out = attr_json(value)
    assert '"' not in out and "<" not in out
    assert json.loads(html.unescape(out)) == value


def test_heat_scale_ends():
    assert "rgb(247,251,255)" in heat(0.0) and "color:#fff" in heat(1.0) and "f2f4f7" in heat(None)


def test_retrieval_grid_uses_the_thumbnail_cache_and_survives_a_vanished_image(tmp_path):
    # The PNG grid takes its thumbnails from the report's cache (each image decoded once for both),
    # with EXIF orientation applied, and draws a placeholder for an image that can no longer be read.
    from retbench.datasets import load_dataset
    from retbench.report import report_data
    from retbench.report.galleries import plot_retrieval_grid
    from tests.conftest import make_dataset

    root = make_dataset(tmp_path / "ds", per_class=4)
    dataset = load_dataset(root)
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((len(dataset), 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    retrievals = report_data.compute_retrievals(vectors, np.arange(len(dataset)), top_k=3, worst_k=3)
    ap = np.linspace(0.1, 0.9, len(dataset))
    cache = ThumbnailCache(tmp_path / "cache")
    plot_retrieval_grid(tmp_path / "grid.png", "t", dataset, dataset, ap, retrievals, k=3, thumbnails=cache)
    assert cache.made == len(list((tmp_path / "cache").rglob("*.jpg"))) > 0 and cache.hits == 0
    again = ThumbnailCache(tmp_path / "cache")
    dataset.image_path(0).unlink()  # the first query's image: drawn as a placeholder, not an error
    plot_retrieval_grid(tmp_path / "grid2.png", "t", dataset, dataset, ap, retrievals, k=3, thumbnails=again)
    assert again.made == 0 and again.hits > 0
    with Image.open(tmp_path / "grid2.png") as image:
        assert image.size[0] > 400
