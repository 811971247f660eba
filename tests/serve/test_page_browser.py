"""The page of `mmfuse serve` (GET /) driven in a real browser: headless Chromium via Selenium.

A real server runs in a subprocess on the session's fitted classifier, retrieval model and image
index, and a recommender fitted here; the page must predict from an uploaded image, a text and a
number, search the index and show the thumbnails, show a user's recommended items (and a new
user's popular ones), and show the server's reason when an upload is refused, at a desktop and a
phone width. Screenshots go to ``$MMFUSE_SCREENSHOTS`` (default: a pytest temporary folder).
"""

from __future__ import annotations

import base64
import csv
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
CHROMEDRIVER = shutil.which("chromedriver")
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip("the browser tests need Chromium and its driver: apt-get install chromium chromium-driver "
                "(`make test` tries)", allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver", reason="the browser tests need selenium (pip install selenium)")
httpx = pytest.importorskip("httpx")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

WINDOWS = {"wide": (1280, 900), "narrow": (390, 844)}
WAIT_S = 40  # the first prediction also loads the encoders
API_KEY_VAR = "MMFUSE_PAGE_TEST_KEY"


@dataclass(frozen=True)
class Server:
    """A running `mmfuse serve`."""

    url: str
    models: dict[str, Any]  # GET /v1/models


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get_json(url: str, key: str | None = None) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


@pytest.fixture(scope="module")
def launch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Starts servers (`mmfuse serve ARGS`), waits for /health, stops them after the module."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(args: list[str], env: dict[str, str] | None = None, key: str | None = None) -> Server:
        port = _free_port()
        log = tmp_path_factory.mktemp("serve-log") / "serve.log"
        command = [sys.executable, "-m", "mmfuse.cli.main", "serve", *args, "--port", str(port), "--threads", "1"]
        with log.open("wb") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"mmfuse serve exited with {process.returncode}:\n{log.read_text()}")
            try:
                if _get_json(url + "/health")["status"] == "ok":
                    return Server(url, _get_json(url + "/v1/models", key))
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.3)
        pytest.fail(f"mmfuse serve did not answer /health within 90 s:\n{log.read_text()}")

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def server(launch: Any, served: Any, recommender: Path) -> Server:
    return launch([str(served.classifier), str(served.retriever), str(recommender), "--index", str(served.index)])


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = os.environ.get("MMFUSE_SCREENSHOTS")
    if not folder:
        return tmp_path_factory.mktemp("screenshots")
    Path(folder).mkdir(parents=True, exist_ok=True)
    return Path(folder)


class Page:
    """A headless Chromium tab at one window size."""

    def __init__(self, name: str, shots: Path) -> None:
        width, height = WINDOWS[name]
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    f"--window-size={width},{height}"):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(str(CHROMEDRIVER)))
        # headless windows are at least ~500 px wide: emulate the exact viewport instead
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})
        self.name, self.shots = name, shots

    def open(self, url: str) -> None:
        self.driver.get(url + "/")
        self.until(lambda d: d.find_element(By.ID, "model-select").is_enabled() or self.error_shown())

    def until(self, condition: Any) -> Any:
        return WebDriverWait(self.driver, WAIT_S).until(condition)

    def find(self, css: str) -> Any:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list[Any]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def pick(self, value: str) -> None:
        Select(self.find("#model-select")).select_by_value(value)

    def error_shown(self) -> bool:
        return bool(self.find_all("#error")) and self.find("#error").is_displayed()

    def screenshot(self, what: str) -> None:
        """Saves the whole page (not only the viewport) as ``<window>-<what>.png``."""
        width, height = self.driver.execute_script(
            "return [document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
        png = self.driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}})
        (self.shots / f"{self.name}-{what}.png").write_bytes(base64.b64decode(png["data"]))

    def assert_fits_width(self) -> None:
        """Nothing spills sideways: the page is no wider than the window."""
        overflow = self.driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page is {overflow} px wider than the {self.name} window"

    def assert_no_script_errors(self) -> None:
        errors = [e["message"] for e in self.driver.get_log("browser") if e.get("source") == "javascript"]
        assert errors == []


@pytest.fixture(scope="module")
def page(request: pytest.FixtureRequest, shots: Path) -> Iterator[Page]:
    tab = Page(request.param, shots)
    yield tab
    tab.driver.quit()


def _first_row(csv_path: Path) -> dict[str, str]:
    with csv_path.open(newline="") as f:
        return next(csv.DictReader(f))


def _model(server: Server, name: str) -> dict[str, Any]:
    return next(m for m in server.models["models"] if m["name"] == name)


@pytest.mark.parametrize("page", list(WINDOWS), indirect=True)
def test_predict_shows_the_prediction_probabilities_and_contributions(page: Page, server: Server, served: Any) -> None:
    row = _first_row(served.data / "data.csv")
    image = served.data / row["image"]
    page.open(server.url)
    page.pick("model/classifier")
    page.find("input[name=image]").send_keys(str(image))
    page.until(lambda d: page.find(".preview img").get_property("naturalWidth") > 0)
    page.find("textarea[name=review]").send_keys(row["review"])
    page.find("input[name=income]").send_keys(row["income"])
    page.find("#predict-button").click()
    page.until(lambda d: page.find_all("#prediction"))

    fields = {"model": "classifier", "review": row["review"], "income": row["income"]}
    expected = httpx.post(server.url + "/v1/predict", data=fields,
                          files={"image": (image.name, image.read_bytes(), "image/png")}).json()
    model = _model(server, "classifier")
    assert page.find("#prediction").text == expected["prediction"]
    assert expected["prediction"] in model["classes"]

    rows = page.find_all(".probability-row")
    shown = {r.get_attribute("data-class"): float(r.get_attribute("data-probability")) for r in rows}
    assert shown == pytest.approx(expected["probabilities"], abs=1e-4)
    assert sum(shown.values()) == pytest.approx(1.0, abs=1e-3)
    order = [float(r.get_attribute("data-probability")) for r in rows]
    assert order == sorted(order, reverse=True)
    assert rows[0].get_attribute("data-class") == expected["prediction"]

    bars = {r.get_attribute("data-modality"): r for r in page.find_all(".contribution-row")}
    assert sorted(bars) == sorted(model["modalities"]) == sorted(expected["contributions"])
    assert expected["missing"] == ["audio", "video"]
    for name, bar in bars.items():
        classes = bar.get_attribute("class").split()
        if name in expected["missing"]:
            assert "missing" in classes and bar.find_element(By.CSS_SELECTOR, ".value").text == "missing"
        else:
            value = expected["contributions"][name]
            assert float(bar.get_attribute("data-value")) == pytest.approx(value, abs=1e-4)
            assert ("pos" if value > 0 else "neg" if value < 0 else "zero") in classes
    assert page.find("#latency").text.endswith(" ms")
    page.assert_fits_width()
    page.screenshot("predict")

    page.find("#explain-button").click()
    page.until(lambda d: page.find_all("table.explain tbody tr"))
    assert len(page.find_all("table.explain tbody tr")) == len(model["modalities"])
    page.screenshot("explain")
    page.assert_no_script_errors()


@pytest.mark.parametrize("page", list(WINDOWS), indirect=True)
def test_search_shows_the_hits_as_loaded_thumbnails(page: Page, server: Server, served: Any) -> None:
    caption = _first_row(served.pairs)["caption"]
    page.open(server.url)
    page.pick("index/image_index")
    Select(page.find("#k-select")).select_by_value("5")
    page.find("#search-input").send_keys(caption)
    page.find("#search-button").click()
    page.until(lambda d: page.find_all(".hit-card"))
    loaded = "return [...document.querySelectorAll('.hit-card img')].map(i => i.complete && i.naturalWidth)"
    page.until(lambda d: all(d.execute_script(loaded)))

    expected = httpx.post(server.url + "/v1/search", data={"index": "image_index", "query": caption, "k": "5"}).json()
    cards = page.find_all(".hit-card")
    assert [c.get_attribute("data-row") for c in cards] == [str(h["row"]) for h in expected["results"]]
    assert [c.find_element(By.CSS_SELECTOR, ".rank").text for c in cards] == ["#1", "#2", "#3", "#4", "#5"]
    widths = page.driver.execute_script(loaded)
    assert len(widths) == 5 and min(widths) > 0
    assert page.find("#search-summary").text.startswith("5 results for")
    page.assert_fits_width()
    page.screenshot("search")
    page.assert_no_script_errors()


@pytest.mark.parametrize("page", list(WINDOWS), indirect=True)
def test_recommend_shows_a_users_items_and_a_new_users_popular_ones(page: Page, server: Server) -> None:
    model = _model(server, "rec")
    assert model["task"] == "recommendation" and model["inputs"] == []
    user = model["example_users"][0]
    page.open(server.url)
    page.pick("model/rec")
    assert page.driver.execute_script("return document.querySelector('#model-select option:checked').parentNode.label") \
        == "Recommend"
    options = "return [...document.querySelectorAll('#user-examples option')].map(o => o.value)"
    assert page.driver.execute_script(options) == model["example_users"]
    assert [c.text for c in page.find_all("#user-picks .chip")] == model["example_users"]
    page.find("#recommend-button").click()
    page.until(lambda d: page.error_shown())
    assert page.find("#error-detail").text.startswith("Type a user id")

    assert page.find("#rec-k-select").get_attribute("value") == "10"
    page.find("#user-input").send_keys(user)
    page.find("#recommend-button").click()
    page.until(lambda d: page.find_all(".rec-card"))
    loaded = "return [...document.querySelectorAll('.rec-card img')].map(i => i.complete && i.naturalWidth)"
    page.until(lambda d: all(d.execute_script(loaded)))

    expected = httpx.post(server.url + "/v1/recommend", data={"model": "rec", "user": user, "k": "10"}).json()
    assert expected["known"] is True and len(expected["results"]) == 10
    cards = page.find_all(".rec-card")
    assert [c.get_attribute("data-item") for c in cards] == [r["item"] for r in expected["results"]]
    assert [c.find_element(By.CSS_SELECTOR, ".rank").text for c in cards] == [f"#{i}" for i in range(1, 11)]
    assert [float(c.get_attribute("data-score")) for c in cards] == pytest.approx(
        [r["score"] for r in expected["results"]], abs=1e-6)
    assert [c.find_element(By.CSS_SELECTOR, ".title").get_attribute("textContent") for c in cards] \
        == [r["fields"]["title"] for r in expected["results"]]
    assert [c.find_element(By.CSS_SELECTOR, ".item-id").text for c in cards] == [r["item"] for r in expected["results"]]
    genre = [c.find_element(By.CSS_SELECTOR, ".fact[data-field=genre] b").text for c in cards]
    assert genre == [r["fields"]["genre"] for r in expected["results"]]
    widths = page.driver.execute_script(loaded)
    assert len(widths) == 10 and min(widths) > 0
    assert all("image" in r["media"] for r in expected["results"])
    assert page.find("#recommend-summary").text.startswith(f"10 items for user “{user}” · personalised")
    assert not page.find_all("#new-user-note") and not page.error_shown()
    page.assert_fits_width()
    page.screenshot("recommend")

    page.find("#user-input").clear()
    page.find("#user-input").send_keys("someone-new")
    Select(page.find("#rec-k-select")).select_by_value("5")
    page.find("#recommend-button").click()
    page.until(lambda d: page.find_all("#new-user-note"))
    page.until(lambda d: all(d.execute_script(loaded)))
    popular = httpx.post(server.url + "/v1/recommend", data={"model": "rec", "user": "someone-new", "k": "5"}).json()
    assert popular["known"] is False
    assert [c.get_attribute("data-item") for c in page.find_all(".rec-card")] == [r["item"] for r in popular["results"]]
    assert page.find("#new-user-note").text.startswith("someone-new is new to this model.")
    assert "most popular items" in page.find("#new-user-note").text
    page.assert_fits_width()
    page.screenshot("recommend-new-user")
    page.assert_no_script_errors()


@pytest.mark.parametrize("page", list(WINDOWS), indirect=True)
def test_a_refused_upload_shows_the_servers_reason(page: Page, server: Server, tmp_path: Path) -> None:
    fake = tmp_path / "x.png"
    fake.write_bytes(random.Random(0).randbytes(600))
    page.open(server.url)
    page.pick("model/classifier")
    page.find("input[name=image]").send_keys(str(fake))
    page.find("#predict-button").click()
    page.until(lambda d: page.error_shown())

    refused = httpx.post(server.url + "/v1/predict", data={"model": "classifier"},
                         files={"image": ("x.png", fake.read_bytes(), "image/png")})
    assert refused.status_code == 422
    assert page.find("#error-title").text.endswith("(422)")
    assert page.find("#error-detail").text == refused.json()["detail"]
    assert "x.png" in page.find("#error-detail").text
    assert not page.find_all("#prediction") or not page.find("#prediction").is_displayed()
    page.screenshot("error")
    page.assert_no_script_errors()


@pytest.mark.parametrize("page", ["wide"], indirect=True)
def test_a_server_with_a_key_asks_for_it_and_keeps_it_in_the_tab(page: Page, launch: Any, served: Any) -> None:
    key = "page-test-key"
    guarded = launch([str(served.classifier), "--api-key-env", API_KEY_VAR], env={API_KEY_VAR: key}, key=key)
    page.open(guarded.url)
    assert page.error_shown() and page.find("#error-title").text.endswith("(401)")
    assert page.find("#key-form").is_displayed()
    page.screenshot("api-key")

    page.find("#api-key").send_keys("wrong")
    page.find("#key-button").click()
    page.until(lambda d: page.find_all("#model-select option") and page.error_shown())
    assert page.find("#key-form").is_displayed()

    page.find("#api-key").clear()
    page.find("#api-key").send_keys(key)
    page.find("#key-button").click()
    page.until(lambda d: page.find("#model-select").is_enabled())
    assert not page.find("#key-form").is_displayed()
    assert page.driver.execute_script("return sessionStorage.getItem('mmfuse-api-key')") == key
    page.find("textarea[name=review]").send_keys("arrived on monday, fits well")
    page.find("#predict-button").click()
    page.until(lambda d: page.find_all("#prediction"))
    assert page.find("#prediction").text in _model(guarded, "classifier")["classes"]
    page.assert_no_script_errors()
