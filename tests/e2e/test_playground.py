"""The playground page, driven as a person would in headless Chromium (Debian's chromium and
chromium-driver, through Selenium) against a real `bentoml serve`: an uploaded Fashion-MNIST
test image, a drawn sketch, a review in each tier, the demand form. Any JavaScript console
error or failed request fails the test. Screenshots go to build/playground/."""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile

import bentoml
import httpx
import pytest

from tests.conftest import MEASUREMENTS, ROOT
from tiffin import families
from tiffin.deploy.serve import Server
from tiffin.families import fashion
from tiffin.playground import weight
from tiffin.wire.catalog import EXAMPLE_DEMAND_ROW, EXAMPLE_TEXT
from tiffin.wire.images import encode_png
from train import datasets

pytestmark = pytest.mark.integration
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
SHOTS = ROOT / "build" / "playground"


@pytest.fixture(scope="module")
def server(model_store):
    pins = {f.env: str(bentoml.models.get(f"{f.name}:latest").tag) for f in families.TRAINED}
    with Server(env=pins) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.fail("chromium and chromium-driver are not installed; `make install` installs them")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not look for a browser to download
    profile = tempfile.mkdtemp(prefix="tiffin-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1100,1900",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def problems(driver, origin: str) -> list[str]:
    """Console errors (CSP violations among them), and the page's requests that failed or
    answered >= 400. Chromium's own pages (its new-tab page, loaded at start, looks up
    Google's hosts, which this machine cannot reach) are not the page's."""
    found = [f"console: {e['message']}" for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    pages: dict[str, str] = {}  # request id -> the document that made it
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message["params"]
        if message["method"] == "Network.requestWillBeSent":
            pages[params["requestId"]] = f"{params.get('documentURL', '')} {params['request']['url']}"
        ours = pages.get(params.get("requestId"), "").startswith(origin)
        if message["method"] == "Network.loadingFailed" and ours and not params.get("canceled"):
            found.append(f"request failed: {params.get('errorText')}: {pages[params['requestId']]}")
        elif message["method"] == "Network.responseReceived" and ours and params["response"]["status"] >= 400:
            found.append(f"HTTP {params['response']['status']}: {params['response']['url']}")
    return found


def wait_text(driver, element_id: str, timeout: float = 60) -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def ready(d):
        found = d.find_elements(By.ID, element_id)
        return found and found[0].text

    return WebDriverWait(driver, timeout).until(ready)


def test_the_playground_answers_every_model_without_a_browser_error(server, browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait

    browser.get(server.url + "/playground")  # redirected to playground/, where its relative links resolve
    WebDriverWait(browser, 30).until(lambda d: d.execute_script("return document.body.dataset.ready") == "true")
    assert browser.current_url == server.url + "/playground/"
    browser.save_screenshot(str(SHOTS / "01-loaded.png"))

    # every control has a label a screen reader reads out
    unlabelled = browser.execute_script("""return [...document.querySelectorAll('input, select, textarea, button')]
        .filter(e => !(e.labels && e.labels.length) && !e.textContent.trim() && !e.getAttribute('aria-label'))
        .map(e => e.id || e.outerHTML)""")
    assert unlabelled == []

    # an uploaded Fashion-MNIST test image: the label shown is the one the API gives
    pixels = datasets.fashion_mnist().x_test[0]
    png = tmp_path / "test-image.png"
    png.write_bytes(encode_png(pixels))
    expected = httpx.post(server.url + "/classify_image", files={"image": ("i.png", png.read_bytes(), "image/png")}).json()
    browser.find_element(By.ID, "image-file").send_keys(str(png))
    assert wait_text(browser, "image-label") == expected["label"]
    shown = browser.find_element(By.ID, "image-result").text
    assert f"model {expected['model']}" in shown and "latency" in shown and "batch of" in shown
    browser.save_screenshot(str(SHOTS / "02-image.png"))

    # the same file dropped on the drop zone (a drag from the desktop, as the page receives it)
    browser.execute_script("document.getElementById('image-result').replaceChildren()")
    browser.execute_script(
        """const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));
        const data = new DataTransfer();
        data.items.add(new File([bytes], "dropped.png", { type: "image/png" }));
        document.getElementById("drop").dispatchEvent(new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true }));""",
        base64.b64encode(png.read_bytes()).decode(),
    )
    assert wait_text(browser, "image-label") == expected["label"]

    # a sketch on the canvas gets an answer too
    sketch = browser.find_element(By.ID, "sketch")
    ActionChains(browser).move_to_element_with_offset(sketch, -60, -80).click_and_hold().move_by_offset(120, 0).move_by_offset(
        0, 160
    ).move_by_offset(-120, 0).move_by_offset(0, -160).release().perform()
    browser.execute_script("document.getElementById('image-result').replaceChildren()")
    browser.find_element(By.ID, "sketch-send").click()
    assert wait_text(browser, "image-label") in fashion.CLASSES
    browser.save_screenshot(str(SHOTS / "03-sketch.png"))

    # a review in each tier: the tier that answered and whether the cascade escalated
    assert browser.find_element(By.ID, "review").get_attribute("value") == EXAMPLE_TEXT
    for tier in ("small", "large", "auto"):
        Select(browser.find_element(By.ID, "tier")).select_by_value(tier)
        browser.execute_script("document.getElementById('text-result').replaceChildren()")
        if tier == "small":  # by keyboard alone: from the review, Tab to the tier, Tab to the button, Enter
            browser.find_element(By.ID, "review").click()
            ActionChains(browser).send_keys(Keys.TAB, Keys.TAB, Keys.ENTER).perform()
        else:
            browser.find_element(By.CSS_SELECTOR, "#text-form button[type=submit]").click()
        label = wait_text(browser, "text-label")
        assert label.split()[0] in ("fresh", "rotten")
        meta = browser.find_element(By.ID, "text-result").text
        escalated = "the cascade escalated" in meta
        assert escalated or tier != "auto" or "no escalation" in meta, meta
        assert f"tier {'large' if tier == 'large' or escalated else 'small'} answered" in meta, meta
        browser.save_screenshot(str(SHOTS / f"04-text-{tier}.png"))

    # the demand form, generated from the API's schema, filled with its example
    fields = browser.find_elements(By.CSS_SELECTOR, "#demand-fields input, #demand-fields select")
    assert [f.get_attribute("name") for f in fields] == demand_fields(server)
    browser.find_element(By.CSS_SELECTOR, "#demand-form button[type=submit]").click()
    expected = httpx.post(server.url + "/predict_demand", json=EXAMPLE_DEMAND_ROW).json()
    assert wait_text(browser, "demand-answer") == f"{expected['bikers']:.1f} bikers"
    browser.save_screenshot(str(SHOTS / "05-demand.png"))

    assert problems(browser, server.url) == []
    MEASUREMENTS.append(f"playground page: {weight()} bytes (HTML, JS, CSS, icon), screenshots in {SHOTS.relative_to(ROOT)}/")


def demand_fields(server) -> list[str]:
    """The request schema's fields in its own order, which the page follows."""
    doc = httpx.get(server.url + "/docs.json").json()
    return list(doc["paths"]["/predict_demand"]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"])


def test_the_page_allows_its_own_origin_only(server):
    r = httpx.get(server.url + "/playground/")
    assert r.status_code == 200 and "default-src 'self'" in r.headers["content-security-policy"]
    assert "http" not in r.text.replace('href="../"', "")  # no CDN, font or script from elsewhere
    js = httpx.get(server.url + "/playground/app.js").text
    assert "http://" not in js and "https://" not in js
    redirect = httpx.get(server.url + "/playground")
    assert redirect.status_code == 308 and redirect.headers["location"] == "playground/"
    doc = httpx.get(server.url + "/docs.json").json()  # the docs page links to it from each endpoint
    assert all("(./playground/)" in doc["paths"][p]["post"]["description"] for p in ("/classify_image", "/classify_text"))
