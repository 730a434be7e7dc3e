"""The gallery's map in a real browser.

Headless Chromium (Debian's `chromium` and `chromium-driver`, installed by scripts/setup_browser.sh)
opens the gallery that `skysift query --gallery` writes for a query on the sample archive: one
footprint shape per result, drawn; hovering one shows its result's thumbnail; clicking one scrolls
to its result; the page fits a phone's width. A second page, `skysift heatmap --gallery`, lays a
scene's heat map at the scene's footprint. Screenshots go to target/map-test/ (their paths are
printed at the end of the run). Without Chromium the tests skip, saying why.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ROOT, SCREENSHOTS

NOT_RUN = (
    "map browser test: not run: no chromium or chromedriver on PATH "
    "(scripts/setup_browser.sh installs Debian's chromium and chromium-driver)"
)
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason=NOT_RUN)

SHOTS = ROOT / "target" / "map-test"
K = 12


def gallery_path(stderr: str) -> Path:
    lines = [line for line in stderr.splitlines() if line.startswith("gallery: ")]
    assert lines, stderr
    return Path(lines[-1].removeprefix("gallery: "))


@pytest.fixture(scope="module")
def query_gallery(cli, archive, tmp_path_factory) -> tuple[Path, list[dict]]:
    """The gallery of a text query over the sample archive (20 records, each with a footprint)."""
    tmp = tmp_path_factory.mktemp("map")
    db = tmp / "db"
    subprocess.run([str(cli), "import", str(db), str(archive), "--device", "cpu", "--no-progress"],
                   check=True, capture_output=True)
    r = subprocess.run([str(cli), "query", str(db), "an airport with runways", "-k", str(K), "--json",
                        "--device", "cpu", "--gallery", str(tmp / "gallery")],
                       check=True, capture_output=True, text=True)
    return gallery_path(r.stderr), json.loads(r.stdout)["results"]


@pytest.fixture(scope="module")
def heat_gallery(cli, archive, tmp_path_factory) -> Path:
    """`skysift heatmap --gallery` on one sample scene (150 x 150) imported as 9 tiles."""
    tmp = tmp_path_factory.mktemp("heat")
    scene = tmp / "scene"
    scene.mkdir()
    src = next((archive / "Port").glob("*.jpg"))
    shutil.copy(src, scene / src.name)
    shutil.copy(src.with_suffix(".json"), scene / src.with_suffix(".json").name)
    db = tmp / "db"
    subprocess.run([str(cli), "import", str(db), str(scene), "--device", "cpu", "--no-progress",
                    "--chip-max", "100", "--tile", "50"], check=True, capture_output=True)
    r = subprocess.run([str(cli), "heatmap", str(db), src.name, "a harbour with boats", "--out",
                        str(tmp / "heat.png"), "--top", "3", "--gallery", str(tmp / "gallery")],
                       check=True, capture_output=True, text=True)
    return gallery_path(r.stderr)


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--disable-background-networking", "--no-first-run", "--window-size=1280,1000"):
        opts.add_argument(a)
    started = time.monotonic()
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    d.started = started
    yield d
    d.quit()


def wait(predicate, what: str, timeout: float = 5.0):
    end = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def shot(driver, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    assert driver.save_screenshot(str(path)), path
    SCREENSHOTS.append(path)
    return path


# A shape nothing else covers at its centre: the one a pointer there reaches.
UNCOVERED = """
return Array.from(document.querySelectorAll('#map polygon.fp')).filter(p => {
  const r = p.getBoundingClientRect();
  return document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2) === p;
}).map(p => Number(p.dataset.card));
"""


def test_map_draws_every_footprint_hover_shows_the_thumbnail_click_scrolls(browser, query_gallery):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    page, results = query_gallery
    assert len(results) == K
    browser.set_window_size(1280, 1000)
    browser.get(page.as_uri())
    shapes = browser.find_elements(By.CSS_SELECTOR, "#map polygon.fp")
    assert len(shapes) == len(results), "one footprint shape per result"
    assert browser.find_elements(By.CSS_SELECTOR, "#map path.land"), "the world outline"
    for s in shapes:
        box = browser.execute_script("const b = arguments[0].getBoundingClientRect(); return [b.width, b.height];", s)
        assert box[0] > 2 and box[1] > 2, f"shape {s.get_attribute('data-card')} is drawn ({box})"
        assert s.get_attribute("fill").startswith("#")
    cards = browser.find_elements(By.CSS_SELECTOR, ".card")
    assert len(cards) == len(results)
    shot(browser, "gallery-map.png")

    # Hover: the tooltip shows the thumbnail of the hovered result's card.
    uncovered = browser.execute_script(UNCOVERED)
    assert uncovered, "some footprint is reachable by the pointer"
    card = uncovered[0]
    shape = browser.find_element(By.CSS_SELECTOR, f"#map polygon.fp[data-card='{card}']")
    tip = browser.find_element(By.ID, "maptip")
    assert not tip.is_displayed()
    ActionChains(browser).move_to_element(shape).perform()
    wait(tip.is_displayed, "the hover box")
    img = tip.find_element(By.TAG_NAME, "img")
    wait(lambda: browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img),
         "the thumbnail to load")
    assert img.is_displayed() and img.size["width"] >= 64
    card_img = browser.find_element(By.CSS_SELECTOR, f"#res{card} img")
    assert img.get_attribute("src") == card_img.get_attribute("src")
    assert img.get_attribute("src").startswith("data:image/")
    assert f"#{results[card]['rank']} " in tip.text
    shot(browser, "gallery-map-hover.png")
    ActionChains(browser).move_by_offset(0, 400).perform()
    wait(lambda: not tip.is_displayed(), "the hover box to go")

    # Click: the page scrolls to the result's card (the last reachable one: furthest down).
    browser.execute_script("window.scrollTo(0, 0)")
    card = max(uncovered)
    shape = browser.find_element(By.CSS_SELECTOR, f"#map polygon.fp[data-card='{card}']")
    ActionChains(browser).move_to_element(shape).click().perform()
    wait(lambda: browser.execute_script("return location.hash") == f"#res{card}", "the link to the card")
    top = wait(lambda: browser.execute_script(
        "const r = document.getElementById(arguments[0]).getBoundingClientRect();"
        "return window.scrollY > 0 && r.top > -1 && r.bottom <= innerHeight + 1 ? [window.scrollY, r.top] : null",
        f"res{card}"), f"the page to scroll to card {card}")
    assert top[0] > 0
    shot(browser, "gallery-map-clicked.png")

    # A phone's width: the map scales down, nothing wider than the screen.
    browser.set_window_size(390, 844)
    browser.get(page.as_uri())
    wait(lambda: browser.execute_script("return innerWidth") <= 400, "the phone width")
    widths = browser.execute_script(
        "const s = document.querySelector('#map svg').getBoundingClientRect();"
        "return [document.documentElement.scrollWidth, innerWidth, s.width];")
    assert widths[0] <= widths[1] and 300 <= widths[2] <= widths[1], widths
    shot(browser, "gallery-map-phone.png")
    browser.set_window_size(1280, 1000)


def test_heat_map_lies_at_the_scene_footprint(browser, heat_gallery):
    from selenium.webdriver.common.by import By

    browser.set_window_size(1280, 1000)
    browser.get(heat_gallery.as_uri())
    heat = browser.find_elements(By.CSS_SELECTOR, "#map image.heat")
    assert len(heat) == 1
    shapes = browser.find_elements(By.CSS_SELECTOR, "#map polygon.fp")
    assert len(shapes) == len(browser.find_elements(By.CSS_SELECTOR, ".card")) == 3
    rect = "const b = arguments[0].getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom];"
    h = browser.execute_script(rect, heat[0])
    assert h[2] - h[0] > 50 and h[3] - h[1] > 50, h
    assert browser.execute_script("return arguments[0].href.baseVal.startsWith('data:image/png;base64,')", heat[0])
    for s in shapes:
        if "small" in s.get_attribute("class"):
            continue
        b = browser.execute_script(rect, s)
        assert h[0] - 1 <= b[0] and b[2] <= h[2] + 1 and h[1] - 1 <= b[1] and b[3] <= h[3] + 1, (h, b)
    assert browser.find_elements(By.CSS_SELECTOR, "#map svg.inset circle.loc"), "a world locator"
    shot(browser, "heatmap-map.png")
