"""examples/app.py in a real browser: the app runs on localhost with the colour-trained tiny model and a tiny index,
and headless Chromium (Debian's chromium and chromium-driver, driven by selenium) uses both tabs.

Run with `make test-ui`, or `pytest tests/ui/test_app_ui.py` (see tests/ui/conftest.py). Screenshots go to outputs/ui/.
"""

import os
import shutil
import socket
import subprocess
import sys
import time

import pytest
import torch

from modeling_eva02at import Eva02AtConfig, Eva02AtProcessor
from modeling_eva02at.utils.processor import match_processor_to_model
from tests.conftest import REPO_ROOT, TINY_MIR_CONFIG
from tests.test_search import COLOURS, train_colour_model, write_colour_video


pytest.importorskip("gradio", reason="the app needs the optional extra: pip install -e '.[app]'")
pytest.importorskip("selenium", reason="the browser test needs selenium: pip install selenium")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOT_DIR = os.path.join(REPO_ROOT, "outputs", "ui")
START_TIMEOUT = 180  # seconds for the app to load the model and answer; generous on a busy 2-core machine


@pytest.fixture(scope="module")
def app_data(tmp_path_factory):
    """The colour model, four 1-second colour videos and a four-second one (240x320), and their index."""
    folder = str(tmp_path_factory.mktemp("app"))
    processor = Eva02AtProcessor.from_pretrained(os.path.join(REPO_ROOT, "hub_configs", "eva02at-b16"))
    match_processor_to_model(processor, Eva02AtConfig.from_pretrained(TINY_MIR_CONFIG), resize=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = train_colour_model(folder, processor)
    finally:
        torch.set_num_threads(threads)
    videos = os.path.join(folder, "videos")
    os.makedirs(videos)
    for colour in COLOURS:
        write_colour_video(os.path.join(videos, f"{colour}.mp4"), [colour], size=(240, 320))
    write_colour_video(os.path.join(videos, "four_colours.mp4"), list(COLOURS), size=(240, 320))
    index = os.path.join(folder, "index")
    subprocess.run(
        [
            sys.executable,
            os.path.join(REPO_ROOT, "examples", "index_videos.py"),
            "--model",
            model,
            "--videos",
            videos,
            "--index",
            index,
            "--num-workers",
            "0",
            "--no-progress",
        ],
        check=True,
        timeout=300,
    )
    return {"model": model, "videos": videos, "index": index}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(app_data, tmp_path_factory):
    port = free_port()
    log_path = tmp_path_factory.mktemp("app_log") / "app.log"
    environment = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1"}
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                os.path.join(REPO_ROOT, "examples", "app.py"),
                "--model",
                app_data["model"],
                "--index",
                app_data["index"],
                "--examples",
                app_data["videos"],
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"the app exited with status {process.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"the app did not listen on port {port} in {START_TIMEOUT} s:\n{log_path.read_text()[-3000:]}"
                    )
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def browser():
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if missing:
        pytest.fail(f"{' and '.join(missing)} missing: apt-get install -y chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    # The Debian driver, given explicitly: selenium's driver manager would try to download one.
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def text_of(driver, selector: str, contains: str, timeout: float = 60) -> str:
    """The text of `selector` once it contains `contains`."""
    WebDriverWait(driver, timeout).until(lambda d: contains in d.find_element(By.CSS_SELECTOR, selector).text)
    return driver.find_element(By.CSS_SELECTOR, selector).text


def screenshot(driver, name: str) -> str:
    os.makedirs(SCREENSHOT_DIR, exist_ok=True)
    path = os.path.join(SCREENSHOT_DIR, name)
    assert driver.save_screenshot(path), f"could not write {path}"
    return path


def test_zero_shot_tab_shows_the_scores_of_an_uploaded_video(browser, app_url, app_data):
    browser.get(app_url)
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#classify-run"))
    upload = browser.find_element(By.CSS_SELECTOR, "#classify-video input[type=file]")
    upload.send_keys(os.path.join(app_data["videos"], "yellow.mp4"))
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#classify-video video"))
    labels = browser.find_element(By.CSS_SELECTOR, "#classify-labels textarea")
    labels.clear()
    labels.send_keys("red, green, blue, yellow")
    browser.find_element(By.CSS_SELECTOR, "#classify-run").click()

    rows = text_of(browser, "#classify-scores", "yellow").splitlines()
    ranked = [line for line in rows if line in COLOURS]
    assert ranked[0] == "yellow" and sorted(ranked) == sorted(COLOURS), rows
    assert float(rows[rows.index("yellow") + 1]) > 0.5, rows
    # The bar chart drew its bars (vega renders an SVG or a canvas).
    WebDriverWait(browser, 30).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#classify-chart svg, #classify-chart canvas")
    )
    screenshot(browser, "screenshot.png")


def test_search_tab_shows_the_best_clip_playable(browser, app_url):
    browser.get(app_url)
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "button[role=tab]"))
    next(tab for tab in browser.find_elements(By.CSS_SELECTOR, "button[role=tab]") if tab.text == "Search").click()
    query = WebDriverWait(browser, 30).until(lambda d: d.find_element(By.CSS_SELECTOR, "#search-query textarea"))
    query.send_keys("a blue video")
    browser.find_element(By.CSS_SELECTOR, "#search-run").click()

    hits = text_of(browser, "#search-hits", "blue.mp4").splitlines()
    first = hits.index("label") + 1  # the first row after the header: rank, score, video, ...
    assert (hits[first], hits[first + 2]) == ("1", "blue.mp4"), hits
    assert "#1" in text_of(browser, "#search-gallery", "blue.mp4")
    video = WebDriverWait(browser, 30).until(lambda d: d.find_element(By.CSS_SELECTOR, "#search-gallery video"))
    # The preview is a real, decodable H.264 clip: the browser reads its duration (1 s).
    duration = WebDriverWait(browser, 30).until(
        lambda d: d.execute_script("return arguments[0].readyState >= 1 ? arguments[0].duration : null", video)
    )
    assert 0.5 < duration < 1.5
    screenshot(browser, "screenshot_search.png")
