"""The report in a real browser (Debian's Chromium driven by Playwright): no console errors, no broken images,
the table and galleries there, hostile labels shown as text. Skipped where Chromium or Playwright is missing.

Screenshots are saved under the test's tmp_path (and into $RETBENCH_TEST_ARTIFACTS when it is set).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from retbench.cli import main
from tests.unit.report.report_fixtures import ACCENT, AMP, CJK, XSS, hostile_dataset

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync", "--disable-quic"]  # fmt: skip


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("Chromium not installed (Debian: apt-get install chromium); browser tests skipped")


@pytest.fixture(scope="module")
def browser():
    executable = chromium_path()
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install -e '.[dev]')")
    with sync_api.sync_playwright() as playwright:
        # launch() gives every browser a fresh temporary profile (--user-data-dir)
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Watched:
    """A page whose console errors, uncaught exceptions, dialogs and failed requests are recorded."""

    def __init__(self, browser, width: int = 1400, height: int = 900):
        self.page = browser.new_page(viewport={"width": width, "height": height})
        self.problems: list[str] = []
        self.page.on(
            "console", lambda m: self.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None
        )
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("requestfailed", lambda r: self.problems.append(f"request failed: {r.url}"))

        def dialog(d):
            self.problems.append(f"dialog {d.type}: {d.message}")
            d.dismiss()

        self.page.on("dialog", dialog)

    def open(self, path: Path):
        self.page.goto(path.resolve().as_uri())
        self.page.wait_for_load_state("load")
        return self.page


def save_screenshot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    artifacts = os.environ.get("RETBENCH_TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(artifacts) / name)
    assert path.stat().st_size > 10_000
    return path


BROKEN_IMAGES = "() => [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt)"


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory):
    """A real small run: generated images with hostile labels, colorhist and a random-init ResNet-18."""
    root = tmp_path_factory.mktemp("browser")
    dataset = hostile_dataset(root / "hostile")
    out = root / "out"
    with pytest.MonkeyPatch.context() as env:  # module scope: the per-test cache isolation is not active yet
        env.setenv("RETBENCH_OFFLINE", "1")
        env.setenv("RETBENCH_CACHE_DIR", str(root / "cache"))
        code = main(["evaluate", str(dataset.root), "--encoder", "colorhist", "--encoder", "resnet18", "--random-init",
                     "--out", str(out), "--bootstrap", "50", "--workers", "0", "--no-figures"])  # fmt: skip
    assert code == 0
    return dataset, out


def test_report_opens_clean_with_every_section_and_inert_labels(browser, hostile_report, tmp_path):
    _, out = hostile_report
    watched = Watched(browser)
    page = watched.open(out / "report.html")
    assert page.evaluate("() => document.images.length") > 50
    assert page.evaluate(BROKEN_IMAGES) == []
    assert page.locator("#map-table tbody tr").count() == 2
    assert page.locator(".gallery").count() == 2 and page.locator(".gallery figure.tile").count() > 50
    assert page.locator("#pr svg path.curve").count() == 2
    assert page.locator(".pair").count() > 0 and page.locator(".vs").count() > 0
    # hostile labels: shown as text, never run or parsed
    assert page.evaluate("() => document.scripts.length") == 2
    assert page.evaluate("() => window.__xss === undefined")
    text = page.evaluate("() => document.body.innerText")
    for label in (XSS, AMP, ACCENT, CJK):
        assert label in text, label
    save_screenshot(page, tmp_path, "report.png")
    assert watched.problems == []
    page.close()


def test_tabs_sorting_and_tooltips_work(browser, hostile_report):
    _, out = hostile_report
    watched = Watched(browser)
    page = watched.open(out / "report.html")
    galleries = page.locator("#galleries .tabbed").first
    panels = galleries.locator(":scope > .panel")
    assert [panels.nth(i).is_visible() for i in range(2)] == [True, False]
    galleries.locator(":scope > .tabs > button").nth(1).click()
    assert [panels.nth(i).is_visible() for i in range(2)] == [False, True]

    table = page.locator("table.per-class").first
    header = table.locator("thead th").nth(2)  # the first encoder's AP column
    header.click()
    values = [
        float(v) for v in table.locator("tbody tr td:nth-child(3)").evaluate_all("tds => tds.map(t => t.dataset.v)")
    ]
    assert values == sorted(values, reverse=True)
    header.click()
    values = [
        float(v) for v in table.locator("tbody tr td:nth-child(3)").evaluate_all("tds => tds.map(t => t.dataset.v)")
    ]
    assert values == sorted(values)

    tile = page.locator("#galleries .panel:not([hidden]) figure.tile").first
    tile.hover()
    tip = page.locator("#tip")
    assert tip.is_visible() and "score" in tip.inner_text()
    assert watched.problems == []
    page.close()


def test_moved_images_show_placeholders_not_broken_images(browser, tmp_path):
    dataset = hostile_dataset(tmp_path / "d")
    out = tmp_path / "out"
    assert main(["evaluate", str(dataset.root), "--encoder", "colorhist", "--out", str(out), "--cache-dir",
                 str(tmp_path / "cache"), "--bootstrap", "0", "--no-figures", "--no-report"]) == 0  # fmt: skip
    shutil.rmtree(dataset.root / "images")
    assert main(["report", str(out), "--cache-dir", str(tmp_path / "cache2")]) == 0
    watched = Watched(browser, width=800)
    page = watched.open(out / "report.html")
    assert page.evaluate("() => document.images.length") == 0
    assert page.locator(".missing").count() > 10
    save_screenshot(page, tmp_path, "report-missing-images.png")
    assert watched.problems == []
    page.close()
