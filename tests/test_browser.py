"""The real page in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import expect, sync_playwright

from . import images
from .fixtures import running_app, slow_convolutions

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


SLOW_DELAY = 0.1
"""Seconds each convolution of the slowed x4plus-architecture model takes longer: 21 of them, 2 s a pass."""


@pytest.fixture(scope="module")
def slow(tiny_models):
    """A slowed RealESRGAN_x4plus-architecture model with random weights, listed on the page."""
    with slow_convolutions(tiny_models, delay=SLOW_DELAY) as name:
        yield name


@pytest.fixture(scope="module")
def page_url(enhancer, tiny_faces, slow):
    with running_app(enhancer, default_model="tiny-srvgg") as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    """One Chromium for the module; each test has a context of its own (cookies, storage and tabs apart)."""
    assert Path(CHROMIUM).exists(), "Chromium is needed: apt-get install chromium (Debian) — .ci/run installs it"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, page_url):
    context = browser.new_context(viewport={"width": 1200, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.goto(page_url)
    yield page
    context.close()


def test_upload_remaster_compare_and_download_the_full_resolution_png(page, tmp_path):
    source = images.save(images.rgb(48, 64), tmp_path / "harbour.jpg", quality=95)
    page.locator("input[type=file]").first.set_input_files(str(source))
    page.get_by_role("button", name="Remaster").click()
    expect(page.get_by_text("64×48 → 256×192").first).to_be_visible(timeout=60_000)

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


def test_the_page_fits_a_phone_screen(browser, page_url, tmp_path):
    context = browser.new_context(viewport={"width": 390, "height": 844})
    phone = context.new_page()
    phone.goto(page_url)
    expect(phone.get_by_role("button", name="Remaster")).to_be_visible()
    expect(phone.get_by_text("Examples: a photo").first).to_be_attached()  # rendered last: wait on a busy machine
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
    context.close()
    assert overflow <= 0, "nothing sticks out sideways on a 390-pixel-wide screen"
    assert cut_off == 0, "every example is within the screen's width"
    assert labels == 1, "each example says what it is and which model shows it"


def choose(scope, label: str, value: str) -> None:
    """Type ``value`` into the dropdown labelled ``label`` in ``scope`` (a page or a tab's panel) and pick it."""
    box = scope.get_by_label(label, exact=True).first
    box.click()
    box.fill(value)
    box.press("Enter")


def watch_progress(page) -> None:
    """Record every value the page's progress bars show, in ``window.seen``."""
    page.evaluate(
        """() => {
            window.seen = [];
            window.watching = setInterval(() => {
                for (const bar of document.querySelectorAll('[role=progressbar]')) {
                    const value = Number(bar.getAttribute('aria-valuenow'));
                    if (window.seen[window.seen.length - 1] !== value) window.seen.push(value);
                }
            }, 20);
        }"""
    )


def test_progress_rises_within_one_tile_and_says_the_stage(page, slow, tmp_path):
    source = images.save(images.rgb(48, 64), tmp_path / "one-tile.png")
    page.locator("input[type=file]").first.set_input_files(str(source))
    choose(page, "Model", slow)
    watch_progress(page)
    page.get_by_role("button", name="Remaster", exact=True).click()
    expect(page.get_by_text("Upscaling the image").first).to_be_visible(timeout=30_000)
    page.screenshot(path=str(tmp_path / "progress.png"))
    expect(page.get_by_text("64×48 → 256×192").first).to_be_visible(timeout=60_000)
    seen = page.evaluate("() => window.seen")
    rising = [value for value in seen if 0 < value < 100]
    assert len(rising) >= 3 and rising == sorted(rising), f"the bar moved within the one tile: {seen}"


def test_stop_says_so_on_every_tab_and_the_work_stops(page, enhancer, slow, tmp_path):
    import time

    import remaster

    from .videos import make_clip

    calls = enhancer.engine.network(remaster.get_model(slow)).module.calls
    source = images.save(images.rgb(48, 64), tmp_path / "stopped.png")
    clip = make_clip(tmp_path / "clip.mp4", frames=6, size=(64, 48)).path
    runs = [
        ("Remaster", source, "Model", "Remaster", "Upscaling the image", "Stopped — nothing was kept"),
        ("Batch", source, "Model", "Remaster all", "1 of 1: stopped.png", "Stopped — nothing was kept"),
        ("Compare models", source, "Models", "Compare", f"{slow}: Upscaling", "Stopped — nothing was kept"),
        ("Video", clip, "Model", "Remaster the video", "Frame 1 of 6", "frames are finished and kept"),
    ]
    for tab, upload, label, button, working, stopped in runs:
        page.get_by_role("tab", name=tab).click()
        panel = page.get_by_role("tabpanel")
        panel.locator("input[type=file]").first.set_input_files(str(upload))
        choose(panel, label, slow)
        panel.get_by_role("button", name=button, exact=True).click()
        expect(page.get_by_text(working).first).to_be_visible(timeout=60_000)
        panel.get_by_role("button", name="Stop").click()
        pressed = time.monotonic()
        expect(panel.get_by_text(stopped)).to_be_visible(timeout=5_000)
        page.screenshot(path=str(tmp_path / f"stopped-{tab}.png"))
        time.sleep(2.5)
        assert not [t for t in calls if t > pressed + 2], f"{tab}: the work stopped within 2 s"
        expect(panel.get_by_text("Error", exact=True)).to_have_count(0)  # a stop is no error


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda tmp: (tmp / "notes.png").write_text("a shopping list") and tmp / "notes.png",
            "not one remaster can read",
        ),
        (lambda tmp: images.truncated(tmp / "broken.png", images.rgb(64, 64), "PNG"), "truncated or corrupt"),
    ],
    ids=["text", "truncated"],
)
def test_a_file_that_cannot_be_remastered_is_refused_as_it_arrives(page, tmp_path, make, message):
    page.locator("input[type=file]").first.set_input_files(str(make(tmp_path)))
    expect(page.get_by_text(message).first).to_be_visible(timeout=10_000)
    expect(page.get_by_text("Drop Image Here").first).to_be_visible()  # taken off the input, before any click
    page.screenshot(path=str(tmp_path / "refused.png"))


def test_closing_the_tab_stops_the_work(page, enhancer, slow, tmp_path):
    import time

    import remaster

    calls = enhancer.engine.network(remaster.get_model(slow)).module.calls
    page.locator("input[type=file]").first.set_input_files(str(images.save(images.rgb(48, 64), tmp_path / "a.png")))
    choose(page, "Model", slow)
    page.get_by_role("button", name="Remaster", exact=True).click()
    expect(page.get_by_text("Upscaling the image").first).to_be_visible(timeout=30_000)
    page.close()
    closed = time.monotonic()
    time.sleep(4)
    assert not [t for t in calls if t > closed + 3], "nobody watches: the work stopped within 3 s"


def test_the_session_gallery_keeps_each_result_to_download_again(page, tmp_path):
    for index in range(2):
        source = images.save(images.rgb(20, 24, seed=index), tmp_path / f"kept{index}.png")
        page.locator("input[type=file]").first.set_input_files(str(source))
        page.get_by_role("button", name="Remaster", exact=True).click()
        expect(page.get_by_text(f"kept{index}_tiny-srvgg_x4.png").first).to_be_visible(timeout=60_000)
    gallery = page.locator(".block", has_text="Your results in this session")
    expect(gallery.locator("img")).to_have_count(2, timeout=10_000)
    page.screenshot(path=str(tmp_path / "gallery.png"), full_page=True)
