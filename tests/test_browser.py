"""The real page in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import expect, sync_playwright

from . import images
from .conftest import running_app

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
# Flags for a sandbox with no network: no first-run work, no background connections.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def page_url(enhancer, tiny_faces):
    with running_app(enhancer, default_model="tiny-srvgg") as url:
        yield url


@pytest.fixture
def page(page_url):
    assert Path(CHROMIUM).exists(), "Chromium is needed: apt-get install chromium (Debian) — .ci/run installs it"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 1000}, accept_downloads=True)
        page.goto(page_url)
        yield page
        browser.close()


def test_upload_remaster_compare_and_download_the_full_resolution_png(page, tmp_path):
    source = images.save(images.rgb(48, 64), tmp_path / "harbour.jpg", quality=95)
    page.locator("input[type=file]").first.set_input_files(str(source))
    page.get_by_role("button", name="Remaster").click()
    expect(page.get_by_text("64×48 → 256×192")).to_be_visible(timeout=60_000)

    # The before/after images load after the result line appears; both are at the output size.
    page.wait_for_function(
        "() => [...document.querySelectorAll('img')].filter(i => i.naturalWidth === 256 && i.naturalHeight === 192)"
        ".length >= 2",
        timeout=30_000,
    )
    expect(page.get_by_text("Detail at 100%")).to_be_visible()

    expect(page.get_by_text("harbour_tiny-srvgg_x4", exact=False).first).to_be_visible()
    with page.expect_download() as download_info:
        page.locator("a[href$='/harbour_tiny-srvgg_x4.png']").first.click()
    downloaded = tmp_path / "download.png"
    download_info.value.save_as(downloaded)
    with Image.open(downloaded) as result:
        assert result.format == "PNG" and result.size == (256, 192)
    page.screenshot(path=str(tmp_path / "remastered.png"), full_page=True)
    assert (tmp_path / "remastered.png").stat().st_size > 10_000


def test_a_user_error_is_shown_on_the_page(page, tmp_path):
    broken = images.truncated(tmp_path / "broken.png", images.rgb(64, 64), "PNG")
    page.locator("input[type=file]").first.set_input_files(str(broken))
    page.get_by_role("button", name="Remaster").click()
    expect(page.get_by_text("truncated or corrupt").first).to_be_visible(timeout=30_000)
    page.screenshot(path=str(tmp_path / "error.png"))


def test_the_page_fits_a_phone_screen(page_url, tmp_path):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        phone = browser.new_page(viewport={"width": 390, "height": 844})
        phone.goto(page_url)
        expect(phone.get_by_role("button", name="Remaster")).to_be_visible()
        overflow = phone.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        # A wide examples table is cut off by its own box without the page itself overflowing.
        cut_off = phone.evaluate(
            """() => {
                 const labels = [...document.querySelectorAll('div.label')];
                 const block = labels.find(e => e.textContent.includes('Examples: a photo')).parentElement;
                 const edge = block.getBoundingClientRect();
                 return [...block.querySelectorAll('*')]
                     .map(e => e.getBoundingClientRect())
                     .filter(box => box.width > 0 && (box.right > edge.right + 1 || box.left < edge.left - 1)).length;
             }"""
        )
        labels = phone.get_by_text("A photo ·").count() if not cut_off else 0
        phone.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
        browser.close()
    assert overflow <= 0, "nothing sticks out sideways on a 390-pixel-wide screen"
    assert cut_off == 0, "every example is within the screen's width"
    assert labels == 1, "each example says what it is and which model shows it"
