"""The web demo: API limits and errors (TestClient), 50 concurrent requests on loopback, and the page in a
real headless Chromium (upload a real photo, pick a gallery pose, generate, see the result)."""
from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import struct
import time
import zlib
from pathlib import Path

import httpx
import pytest

from posetransfer.apps import serve as S
from posetransfer.inference import load_model


@pytest.fixture(scope="module")
def app(checkpoint, synth_data):
    return S.create_app(load_model(checkpoint), synth_data)


@pytest.fixture(scope="module")
def client(app):
    from fastapi.testclient import TestClient

    return TestClient(app)


@pytest.fixture(scope="module")
def live_server(app, serve_in_thread):
    """The app served by uvicorn on a free loopback port, in a thread of this process."""
    import uvicorn

    with serve_in_thread(lambda port: uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")) as port:
        yield f"http://127.0.0.1:{port}"


def _target(client) -> str:
    return json.dumps(client.get("/api/gallery").json()["poses"][1]["keypoints"])


def _bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A valid 1-bit PNG of width×height white pixels, built row by row (about 60 kB on disk)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + b"\xff" * ((width + 7) // 8)
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def test_info_gallery_sample_and_transfer(client):
    info = client.get("/api/info").json()
    assert info["size"] == [128, 64] and info["arch"] == "patn" and info["has_samples"]
    poses = client.get("/api/gallery").json()["poses"]
    assert poses and len(poses[0]["keypoints"]) == 18
    sample = client.get("/api/sample").json()
    assert sample["image"].startswith("data:image/jpeg;base64,")
    r = client.post("/api/transfer", data={"sample": poses[0]["name"], "target_keypoints": _target(client)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["image"].startswith("data:image/png;base64,") and body["attention"].startswith("data:image/png")
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert "http" not in page.text.replace("http-equiv", "")      # nothing external is loaded
    assert "http" not in client.get("/static/app.js").text


def test_real_photo_upload_estimates_pose(client, astronaut_jpg):
    with open(astronaut_jpg, "rb") as handle:
        r = client.post("/api/transfer", files={"image": ("astronaut.jpg", handle, "image/jpeg")},
                        data={"target_keypoints": _target(client)})
    assert r.status_code == 200, r.text
    assert sum(1 for y, x in r.json()["source_keypoints"] if y >= 0) >= 5


def test_oversized_upload_is_413(client):
    big = b"\xff\xd8" + os.urandom(S.MAX_UPLOAD_BYTES + 1024)
    r = client.post("/api/transfer", files={"image": ("big.jpg", big, "image/jpeg")},
                    data={"target_keypoints": _target(client)})
    assert r.status_code == 413 and "limit is 8 MB" in r.json()["error"]


def test_non_image_and_decompression_bomb_are_4xx_json(client):
    r = client.post("/api/transfer", files={"image": ("notes.txt", b"hello, not an image", "text/plain")},
                    data={"target_keypoints": _target(client)})
    assert r.status_code == 400 and "notes.txt" in r.json()["error"] and "not an image" in r.json()["error"]
    bomb = _bomb_png()
    assert len(bomb) < S.MAX_UPLOAD_BYTES
    r = client.post("/api/transfer", files={"image": ("bomb.png", bomb, "image/png")},
                    data={"target_keypoints": _target(client)})
    assert 400 <= r.status_code < 500 and "bomb.png" in r.json()["error"]
    r = client.post("/api/transfer", data={"sample": "x", "target_keypoints": "[[1, 2]"})
    assert r.status_code == 400 and "target_keypoints" in r.json()["error"]
    r = client.post("/api/transfer", data={"target_keypoints": _target(client)})
    assert r.status_code == 400 and "no photo" in r.json()["error"]


def test_missing_or_invalid_field_is_422_in_the_api_shape(client):
    """A form without target_keypoints, or a text where the photo goes: {"error": one line}, not FastAPI's detail."""
    r = client.post("/api/transfer", data={"sample": "x"})
    assert r.status_code == 422 and set(r.json()) == {"error"}
    assert r.json()["error"] == "target_keypoints: field required"
    r = client.post("/api/transfer", data={"image": "not a file", "target_keypoints": _target(client)})
    assert r.status_code == 422 and set(r.json()) == {"error"}
    assert r.json()["error"].startswith("image: ") and "\n" not in r.json()["error"]


def test_blank_upload_no_person_is_422(client, tmp_path):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (200, 300), (255, 255, 255)).save(buffer, format="PNG")
    r = client.post("/api/transfer", files={"image": ("blank.png", buffer.getvalue(), "image/png")},
                    data={"target_keypoints": _target(client)})
    assert r.status_code == 422 and "no person" in r.json()["error"]


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def test_fifty_concurrent_requests(live_server, client, record_property):
    target = _target(client)
    name = client.get("/api/gallery").json()["poses"][0]["name"]

    def one(_):
        r = httpx.post(f"{live_server}/api/transfer", data={"sample": name, "target_keypoints": target}, timeout=120)
        return r.status_code

    before = _rss_mb()
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        codes = list(pool.map(one, range(50)))
    elapsed = time.perf_counter() - started
    after = _rss_mb()
    assert codes == [200] * 50
    assert httpx.get(f"{live_server}/api/info").status_code == 200     # still serving
    record_property("rss_before_mb", round(before, 1))
    record_property("rss_after_mb", round(after, 1))
    print(f"\n50 concurrent requests: {elapsed:.1f} s, RSS {before:.0f} MB -> {after:.0f} MB")


CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip("Debian chromium/chromedriver not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1400,1000",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def test_page_in_headless_chromium(live_server, browser, astronaut_jpg, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(live_server + "/")
    wait = WebDriverWait(browser, 60)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#gallery canvas"))
    # an error is shown on the page: generate without a photo
    browser.find_element(By.ID, "generate").click()
    wait.until(lambda d: d.find_element(By.ID, "error").is_displayed())
    assert "photo" in browser.find_element(By.ID, "error").text
    # a non-image upload: the server's message appears
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not an image")
    browser.find_element(By.ID, "photo").send_keys(str(text_file))
    browser.find_element(By.ID, "generate").click()
    wait.until(lambda d: "not an image" in d.find_element(By.ID, "error").text)
    # the real photo and a gallery pose, then drag the right wrist (joint 4) 30 canvas pixels to the left
    browser.find_element(By.ID, "photo").send_keys(str(astronaut_jpg))
    browser.find_elements(By.CSS_SELECTOR, "#gallery canvas")[2].click()
    before = browser.execute_script("return state.pose[4].slice()")
    canvas = browser.find_element(By.ID, "pose-canvas")
    scale = browser.execute_script("return state.scale")
    rect = browser.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.width, r.height];",
                                  canvas)
    from selenium.webdriver.common.action_chains import ActionChains

    dx, dy = (before[1] + 0.5) * scale - rect[0] / 2, (before[0] + 0.5) * scale - rect[1] / 2
    ActionChains(browser).move_to_element_with_offset(canvas, int(dx), int(dy)).click_and_hold() \
        .move_by_offset(-30, 0).release().perform()
    after = browser.execute_script("return state.pose[4].slice()")
    assert after[0] == pytest.approx(before[0], abs=2) and before[1] - after[1] >= 6
    browser.find_element(By.ID, "generate").click()
    wait.until(lambda d: d.execute_script(
        "const i = document.getElementById('result');"
        "return i.src.startsWith('data:') && i.complete && i.naturalWidth > 0;"))
    size = browser.execute_script(
        "const i = document.getElementById('result'); return [i.naturalWidth, i.naturalHeight];")
    assert size == [64, 128]
    assert not browser.find_element(By.ID, "error").is_displayed()
    assert browser.execute_script("return document.getElementById('attention').naturalWidth") > 0
    browser.save_screenshot("/tmp/posetransfer_demo.png")
    logs = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE" and "/api/" not in e["message"]]
    assert not logs, logs
