"""The rendered leaderboard page: escaped payloads, and sorting in headless Chromium.

Chromium and its driver come from Debian (``apt-get install -y chromium chromium-driver``:
``/usr/bin/chromium``, ``/usr/bin/chromedriver``), driven with ``selenium``. The browser test
is skipped only when Chromium is not installed.
"""

from __future__ import annotations

import io
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.leaderboard import load_board
from benchmarks.leaderboard.render import SORT_JS, board_table, render_board, to_html
from tests.leaderboard_fixtures import IMG_AUTHOR, SCRIPT_NAME, LbEnv

pytestmark = pytest.mark.usefixtures("single_thread")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
         "--window-size=1600,900")


@pytest.fixture(scope="module")
def site(lb_env: LbEnv, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    render_board(board=lb_env.props_board, out=out)
    return out / "index.html"


def test_page_escapes_submitted_text(site: Path) -> None:
    page = site.read_text()
    assert page.count("<script>") == 1 and page.count("</script>") == 1  # ours only
    assert "<script>window.__pwned" not in page and "<img src=x" not in page
    assert "&lt;script&gt;window.__pwned = 1; document.title = &#39;pwned&#39;;&lt;/script&gt;" \
        in page
    assert "&lt;img src=x onerror=&#34;window.__pwned = 2&#34;&gt;" in page
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    assert csp and "default-src 'none'" in csp.group(1) and "script-src 'sha256-" in csp.group(1)
    assert SORT_JS in page and "http://" not in page.split("<body>")[0]  # no external loads


def test_template_escapes_every_submitted_field(lb_env: LbEnv) -> None:
    """Autoescaping covers each field the template shows, attributes included (not only the
    name and authors of the fixture board)."""
    index, entries = load_board(lb_env.props_board)
    evil = '"><script>alert(1)</script><b x="'
    method = entries[0].method.model_copy(update={
        "display_name": evil, "name": evil, "version": evil, "authors": [evil],
        "description": evil, "url": 'https://x.org/"onmouseover="alert(1)'})
    hostile = [entries[0].model_copy(update={"method": method, "id": evil})]
    page = to_html(board_table(index, hostile))
    assert page.count("<script>") == 1 and "<b x=" not in page and "alert(1)</script>" not in page
    assert '"onmouseover=' not in page and "&#34;onmouseover=&#34;alert(1)" in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 6


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("Chromium is not installed (apt-get install -y chromium chromium-driver)")
    from selenium import webdriver  # CI installs selenium with Chromium
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in FLAGS:
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def _order(driver: object) -> list[str]:
    return driver.execute_script(  # type: ignore[attr-defined]
        "return Array.from(document.querySelectorAll('#leaderboard tbody tr'))"
        ".map(function (r) { return r.dataset.entry; });")


def _click(driver: object, key: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(  # type: ignore[attr-defined]
        By.CSS_SELECTOR, f'th[data-key="{key}"] button').click()


def test_page_in_chromium_sorts_and_runs_no_payload(
    browser: object, site: Path, lb_env: LbEnv, tmp_path: Path
) -> None:
    from PIL import Image
    from selenium.webdriver.common.by import By

    d = browser
    d.get(site.as_uri())  # type: ignore[attr-defined]
    index, entries = load_board(lb_env.props_board)
    title = f"Leaderboard: {index.suite} on {index.zoo.name} v{index.zoo.version}"
    assert d.title == title  # type: ignore[attr-defined]
    assert d.execute_script("return typeof window.__pwned;") == "undefined"  # type: ignore[attr-defined]
    shot = d.get_screenshot_as_png()  # type: ignore[attr-defined]
    (tmp_path / "board.png").write_bytes(shot)
    img = Image.open(io.BytesIO(shot))
    low, high = img.convert("L").getextrema()
    assert img.size[0] >= 800 and high - low > 100  # text on a background, not blank

    by_id = {e.id: e for e in entries}
    chance = next(e for e in entries if e.method.name == "chance")
    cell = d.find_element(By.CSS_SELECTOR,  # type: ignore[attr-defined]
                          f'tr[data-entry="{chance.id}"] td.method')
    assert SCRIPT_NAME in cell.text and IMG_AUTHOR in d.find_element(  # type: ignore[attr-defined]
        By.CSS_SELECTOR, f'tr[data-entry="{chance.id}"] td:nth-child(4)').text

    def avg(eid: str) -> float:
        return sum(s.main.mean for s in by_id[eid].scores) / len(by_id[eid].scores)

    initial = _order(d)
    assert initial == sorted(by_id, key=lambda e: -avg(e))

    def score(eid: str) -> float:
        return by_id[eid].score("digits-test-acc").main.mean

    _click(d, "task:digits-test-acc")
    desc = _order(d)
    assert desc == sorted(initial, key=lambda e: -score(e))
    assert [score(e) for e in desc] == sorted((score(e) for e in desc), reverse=True)
    head = d.find_element(By.CSS_SELECTOR, 'th[data-key="task:digits-test-acc"]')  # type: ignore[attr-defined]
    assert head.get_attribute("aria-sort") == "descending"
    _click(d, "task:digits-test-acc")
    assert _order(d) == sorted(desc, key=score)
    assert head.get_attribute("aria-sort") == "ascending"
    _click(d, "method")
    by_name = _order(d)
    assert by_name == sorted(by_id, key=lambda e: by_id[e].method.display_name.casefold())
    _click(d, "added")  # oldest first; ties keep the previous order (a stable sort)
    assert _order(d) == sorted(by_name, key=lambda e: by_id[e].added)
    assert d.title == title  # type: ignore[attr-defined]
    assert d.execute_script("return typeof window.__pwned;") == "undefined"  # type: ignore[attr-defined]
