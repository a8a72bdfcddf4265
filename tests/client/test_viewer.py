"""The results page in a real headless browser (Debian's chromium, driven through chromedriver).

The jobs are the CLI's (real pipelines). Each page must load with no console error, draw its
waveforms (pixels on the canvas that follow the audio), play when clicked, and for diarize
show one lane per speaker of diarization.json, in the colours the transcript uses.
"""

from __future__ import annotations

import io
import json
import shutil
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import pytest
import soundfile as sf

from services.common.settings import DEV_SIGNING_SECRET
from services.gateway import viewer_links

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
STATIC = Path(__file__).resolve().parents[2] / "services" / "gateway" / "static" / "viewer"
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage", "--window-size=1280,1600")


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert CHROMIUM and CHROMEDRIVER, "make test installs chromium and chromium-driver (tests/apt-packages.txt)"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    driver.get("data:text/html,<script>console.error('probe')</script>")       # the log is read: it can fail
    assert any("probe" in e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE")
    yield driver
    driver.quit()


def open_page(browser, url: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get_log("browser")                                  # drop what earlier pages logged
    browser.get(url)
    WebDriverWait(browser, 30).until(lambda d: d.execute_script("return document.body.dataset.ready === '1'"))


def console_errors(browser) -> list[dict]:
    return [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]


CANVAS_STATS = """
const c = arguments[0], ctx = c.getContext('2d');
const {data, width, height} = ctx.getImageData(0, 0, c.width, c.height);
let painted = 0; const heights = [];
for (let x = 0; x < width; x += Math.max(1, Math.floor(width / 200))) {
  let h = 0;
  for (let y = 0; y < height; y++) if (data[(y * width + x) * 4 + 3] > 0) h++;
  heights.push(h); painted += h;
}
return {width, height, painted, heights};
"""


def assert_waveform(browser, canvas) -> None:
    stats = browser.execute_script(CANVAS_STATS, canvas)
    heights = stats["heights"]
    assert stats["width"] > 100 and stats["painted"] > 0.05 * len(heights) * stats["height"], stats
    # Drawn from the audio: loud columns are tall, silent ones a thin line (speech has pauses).
    assert max(heights) > 0.3 * stats["height"] and min(heights) < 0.1 * stats["height"], heights


def playing(browser, audio, since: float, wait_s: float = 8.0) -> float:
    deadline = time.monotonic() + wait_s
    t = since
    while time.monotonic() < deadline:
        t, paused = browser.execute_script("return [arguments[0].currentTime, arguments[0].paused]", audio)
        if not paused and t > since + 0.3:
            return t
        time.sleep(0.1)
    raise AssertionError(f"audio did not advance past {since} s (at {t} s)")


def test_diarize_page_timeline_transcript_and_click_to_seek(browser, cli_runs):
    from selenium.webdriver.common.by import By

    job = cli_runs.diarize.json["job"]
    result = json.loads((cli_runs.out / "diarization.json").read_text())
    open_page(browser, job["viewer_url"])

    lanes = browser.find_elements(By.CSS_SELECTOR, "#timeline .lane")
    assert [lane.get_attribute("data-speaker") for lane in lanes] == [s["id"] for s in result["speakers"]]
    assert len(lanes) == result["num_speakers"] == 2
    colours = {}
    for lane in lanes:
        turns = lane.find_elements(By.CSS_SELECTOR, ".turn")
        assert turns, lane.get_attribute("data-speaker")
        colours[lane.get_attribute("data-speaker")] = {t.value_of_css_property("background-color") for t in turns}
    assert all(len(c) == 1 for c in colours.values()) and len({c.pop() for c in colours.values()}) == 2
    for cue in browser.find_elements(By.CSS_SELECTOR, "#transcript .cue"):   # the transcript keeps the colours
        name = cue.get_attribute("data-speaker")
        who = cue.find_element(By.CSS_SELECTOR, ".who")
        lane_name = browser.find_element(By.CSS_SELECTOR, f'.lane[data-speaker="{name}"] .name')
        assert who.text == name and who.value_of_css_property("color") == lane_name.value_of_css_property("color")

    assert_waveform(browser, browser.find_element(By.CSS_SELECTOR, "#input canvas.wave"))
    words = browser.find_elements(By.CSS_SELECTOR, "#transcript .word")
    assert len(words) == len(result["words"]) and words[0].text == result["words"][0]["word"]
    word = words[len(words) // 2]
    start = float(word.get_attribute("data-start"))
    word.click()                                                # a real click: seek there and play
    audio = browser.find_element(By.CSS_SELECTOR, "#input audio")
    assert playing(browser, audio, start) >= start
    assert console_errors(browser) == []


def test_separate_page_plays_every_stem_with_solo_and_mute(browser, cli_runs):
    from selenium.webdriver.common.by import By

    job = cli_runs.separate.json["job"]
    open_page(browser, job["viewer_url"])
    canvases = browser.find_elements(By.CSS_SELECTOR, "canvas.wave")
    assert [c.get_attribute("data-name") for c in canvases] == ["dialog.wav", "speech.wav", "music.wav", "effect.wav"]
    for name in ("dialog.wav", "speech.wav"):          # music and effect of speech alone may be near silent
        assert_waveform(browser, browser.find_element(By.CSS_SELECTOR, f'canvas.wave[data-name="{name}"]'))

    browser.find_element(By.ID, "play-all").click()
    stems = browser.find_elements(By.CSS_SELECTOR, "main section:not(#input) audio")
    assert len(stems) == 3
    for audio in stems:
        playing(browser, audio, 0.0)
    muted = lambda: browser.execute_script("return arguments[0].map(a => a.muted)", stems)
    assert muted() == [False, False, False]
    solos = browser.find_elements(By.CSS_SELECTOR, "button.solo")
    mutes = browser.find_elements(By.CSS_SELECTOR, "button.mute")
    solos[0].click()
    assert muted() == [False, True, True]                       # speech soloed
    solos[2].click()
    assert muted() == [False, True, False]                      # speech and effect soloed
    mutes[0].click()
    assert muted() == [True, True, False]                       # mute wins over solo
    solos[0].click(), solos[2].click(), mutes[0].click()
    assert muted() == [False, False, False]
    browser.find_element(By.ID, "pause-all").click()
    assert browser.execute_script("return arguments[0].every(a => a.paused)", stems)
    assert console_errors(browser) == []


def test_enhance_page_before_after_and_loudness_report(browser, cli_runs, client_stack):
    from selenium.webdriver.common.by import By

    report = json.loads((cli_runs.out / "report.json").read_text())
    job_id = cli_runs.enhance.stdout.split()[0]
    doc = httpx.get(f"{client_stack.url}/v1/jobs/{job_id}", headers=cli_runs.account.headers).json()
    open_page(browser, doc["viewer_url"])
    canvases = browser.find_elements(By.CSS_SELECTOR, "canvas.wave")
    assert [c.get_attribute("data-name") for c in canvases] == ["dialog.wav", "enhanced.wav"]
    for canvas in canvases:
        assert_waveform(browser, canvas)
    row = browser.find_element(By.CSS_SELECTOR, '#loudness tr[data-key="integrated_lufs"]')
    cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
    assert cells == ["Integrated loudness", f"{report['input']['integrated_lufs']} LUFS",
                     f"{report['output']['integrated_lufs']} LUFS"]
    canvases[1].click()                                         # click the "after" waveform at its middle: seek
    after = browser.find_elements(By.CSS_SELECTOR, "audio")[1]
    t = browser.execute_script("return arguments[0].currentTime", after)
    assert abs(t - report["output"]["duration_s"] / 2) < 0.5
    assert console_errors(browser) == []


def test_viewer_link_is_the_only_credential(cli_runs, client_stack):
    job = cli_runs.diarize.json["job"]
    url = job["viewer_url"]
    parts = urlsplit(url)
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert q["account"] == cli_runs.account.account_id
    page = httpx.get(url)                                       # no token
    assert page.status_code == 200 and "viewer.js" in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    data = httpx.get(f"{client_stack.url}{parts.path}/data?{parts.query}").json()
    assert data["job"]["job_id"] == job["job_id"] and data["diarization"]["num_speakers"] == 2

    base = f"{client_stack.url}{parts.path}"
    for tampered in ({**q, "signature": "0" * 64}, {**q, "expires": str(int(q["expires"]) + 1)},
                     {**q, "account": "acc_someoneelse"}):
        for path in (base, base + "/data"):
            r = httpx.get(path, params=tampered)
            assert r.status_code == 403 and r.json()["error"]["code"] == "invalid_signature", r.text
    other = cli_runs.separate.json["job"]["job_id"]              # a valid signature is for one job only
    r = httpx.get(f"{client_stack.url}/v1/jobs/{other}/view", params=q)
    assert r.status_code == 403
    expired = viewer_links.viewer_url(client_stack.url, DEV_SIGNING_SECRET, job["job_id"],
                                      q["account"], ttl_s=-5)
    r = httpx.get(expired)
    assert r.status_code == 403 and r.json()["error"]["code"] == "url_expired"


def test_static_assets_are_served_and_reach_nothing_outside(client_stack):
    for name in ("viewer.js", "viewer.css", "index.html"):
        assert httpx.get(f"{client_stack.url}/v1/viewer/static/{name}").status_code == 200
        text = (STATIC / name).read_text()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, name
    r = httpx.get(f"{client_stack.url}/v1/viewer/static/..%2Fapp.py")
    assert r.status_code == 404


def test_page_of_a_failed_job_whose_upload_was_deleted(browser, client_stack, new_account):
    from selenium.webdriver.common.by import By
    from timbr import Timbr

    acc = new_account(10)
    with Timbr(token=acc.token, base_url=client_stack.url) as tb:
        tone_then_silence = np.concatenate([0.5 * np.sin(np.arange(16000) * 2 * np.pi * 440 / 16000),
                                            np.zeros(16000)])
        buf = io.BytesIO()
        sf.write(buf, tone_then_silence, 16000, format="WAV")
        f = tb.upload(io.BytesIO(buf.getvalue()), "tone.wav")
        job = tb.wait(tb.separate(f, output_format="mp3", sample_rate=96000), raise_on_failure=False)
        assert job.status == "failed"
        open_page(browser, job.viewer_url)
        assert "validation_error" in browser.find_element(By.CSS_SELECTOR, "p.error").text
        assert_waveform(browser, browser.find_element(By.CSS_SELECTOR, "#input canvas.wave"))
        assert console_errors(browser) == []

        tb.delete_file(f)                       # the upload is gone: the page shows the job without it
        open_page(browser, job.viewer_url)
        assert browser.find_elements(By.CSS_SELECTOR, "#input") == []
        assert browser.find_element(By.ID, "summary").get_attribute("data-status") == "failed"
        assert console_errors(browser) == []
