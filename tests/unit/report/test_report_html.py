"""render_report: escaping, self-containment, placeholders and notes, from result folders built from embeddings."""

from __future__ import annotations

import re
import shutil

import pytest

from retbench.errors import RetbenchError
from retbench.report.html import render_report, write_report
from retbench.report.thumbnails import ThumbnailCache
from tests.unit.report.report_fixtures import (
    ACCENT,
    AMP,
    CJK,
    XSS,
    clustered_rows,
    hostile_dataset,
    unit_rows,
    write_folder,
)


@pytest.fixture
def hostile(tmp_path):
    dataset = hostile_dataset(tmp_path / "hostile")
    folder = tmp_path / "out"
    labels = list(dataset.labels)
    document = write_folder(
        folder, dataset, {"enc<b>": clustered_rows(labels, seed=1), "plain": unit_rows(len(labels), seed=2)}
    )
    return dataset, folder, document


def visible_text(page: str) -> str:
    """The page without its two scripts (what a reader sees, still escaped)."""
    return re.sub(r"<script[^>]*>.*?</script>", "", page, flags=re.S)


def test_labels_paths_and_names_are_escaped(hostile, tmp_path):
    _, folder, document = hostile
    page = render_report(document, folder, thumbnails=ThumbnailCache(tmp_path / "thumbs"))
    assert page.count("<script") == 2  # the thumbnails JSON and the page's own script, nothing injected
    body = visible_text(page)
    assert XSS not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert AMP not in body and "a&amp;b&quot;c" in body
    assert "enc<b>" not in body and "enc&lt;b&gt;" in body
    assert ACCENT in body and CJK in body  # non-ASCII stays as UTF-8 text
    assert '<meta charset="utf-8">' in page


def test_page_is_self_contained_and_every_image_is_embedded(hostile, tmp_path):
    _, folder, document = hostile
    page = render_report(document, folder, thumbnails=ThumbnailCache(tmp_path / "thumbs"))
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # no CDN, no network
    assert "fetch(" not in page and "@import" not in page
    thumbs = re.search(r'<script type="application/json" id="thumbs">(.*?)</script>', page, re.S).group(1)
    import json

    embedded = json.loads(thumbs)
    ids = set(re.findall(r'<img class="th" data-t="(\d+)"', page))
    assert ids and ids == set(embedded)  # every image has its thumbnail, each embedded once
    assert len(re.findall(r"<img\b", page)) == len(re.findall(r'<img class="th" data-t="\d+"', page))
    for section in ('id="summary"', 'id="pr"', 'id="classes"', 'id="galleries"', 'id="confusions"',
                    'id="disagreements"', 'id="config"', 'id="map-table"', 'class="gallery"'):  # fmt: skip
        assert section in page, section
    assert "image not found" not in page


def test_rendering_is_deterministic(hostile, tmp_path):
    _, folder, document = hostile
    cache = tmp_path / "thumbs"
    assert render_report(document, folder, thumbnails=ThumbnailCache(cache)) == render_report(
        document, folder, thumbnails=ThumbnailCache(cache)
    )


def test_moved_images_give_placeholders_not_broken_images(hostile, tmp_path):
    dataset, folder, document = hostile
    shutil.rmtree(dataset.root / "images")
    page = render_report(document, folder, thumbnails=ThumbnailCache(tmp_path / "thumbs"))
    assert "<img" not in page
    assert page.count("image not found") > 10
    assert "are not at" in page  # the callout naming the missing folder


def test_folder_without_sidecars_renders_with_a_note(hostile, tmp_path):
    _, folder, document = hostile
    shutil.rmtree(folder / "data")
    page = render_report(document, folder, thumbnails=ThumbnailCache(tmp_path / "thumbs"))
    assert "No galleries" in page and "rerun <code>retbench evaluate</code>" in page
    assert 'id="map-table"' in page and 'id="classes"' in page  # the numbers are all still there


def test_embeddings_without_images_omit_galleries_with_a_note(tmp_path):
    dataset = hostile_dataset(tmp_path / "d")
    folder = tmp_path / "out"
    document = write_folder(folder, dataset, {"byo": clustered_rows(list(dataset.labels))}, images_available=False)
    page = render_report(document, folder, thumbnails=ThumbnailCache(tmp_path / "thumbs"))
    assert "evaluated without their images" in page and "<img" not in page
    assert 'id="confusions"' in page  # confusions need labels only


def test_write_report_reads_results_json_and_errors_are_actionable(hostile, tmp_path):
    _, folder, _ = hostile
    out = write_report(folder, cache_dir=tmp_path / "cache")
    assert out == folder / "report.html" and out.stat().st_size > 10_000
    assert list((tmp_path / "cache" / "thumbnails").rglob("*.jpg"))
    with pytest.raises(RetbenchError, match="results.json not found"):
        write_report(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "results.json").write_text("{not json")
    with pytest.raises(RetbenchError, match="cannot read"):
        write_report(tmp_path / "bad")
    (tmp_path / "bad" / "results.json").write_text("[]")
    with pytest.raises(RetbenchError, match="no 'runs' list"):
        write_report(tmp_path / "bad")


def test_demo_sized_report_stays_under_5_mb(tmp_path):
    """The demo dataset (300 images) with two encoders whose galleries share as few images as possible."""
    from retbench.cli import demo_dataset_dir
    from retbench.datasets import load_dataset

    dataset = load_dataset(demo_dataset_dir())
    folder = tmp_path / "demo"
    document = write_folder(folder, dataset, {"a": unit_rows(300, seed=5), "b": unit_rows(300, seed=6)})
    page = render_report(document, folder, thumbnails=ThumbnailCache(tmp_path / "thumbs"))
    n_images = len(re.findall(r"<img\b", page))
    assert n_images > 300
    assert len(page.encode("utf-8")) < 5_000_000
