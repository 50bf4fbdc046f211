"""The jobs page in a real browser: headless Chromium (Debian's chromium + chromium-driver, installed
by `make test`) driven by Selenium against `restyle up`. It uploads a short clip from the page (a
create-only SAS straight to Azurite), watches the job reach Completed, checks that the before/after
preview image has loaded, shows a rejected upload's reason in words, and cancels a running job. Signed
in as a test user (devhost's App Service sign-in), the page lists that person's jobs only, shows their
quota, and an upload larger than its ticket ends as a rejection with the reason.

`RESTYLE_DOCS_SCREENSHOT=1` also writes the page's screenshot to docs/jobs-page.png (how that file
was made); otherwise it goes to the test's temp folder only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import urllib.request
from pathlib import Path

import pytest
from e2e_support import wait_for
from restyle_up import ROOT, RestyleUp

from scoring_job.preview import TILE_WIDTH
from tools.cli.main import main

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
if not (CHROMIUM and CHROMEDRIVER):
    if os.environ.get("RESTYLE_REQUIRE_BROWSER"):  # make test installs them: missing there is a failure
        raise RuntimeError("chromium and chromedriver are missing: run `make browser`")
    pytest.skip("chromium/chromedriver not installed (make browser installs them)", allow_module_level=True)

from selenium import webdriver  # noqa: E402 - only once the browser is known to be there
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    up = RestyleUp(tmp_path_factory.mktemp("page") / "state").start()
    yield up
    up.close()


@pytest.fixture(scope="module")
def browser():
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not try to download a driver
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1400"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


# One look at a job's row, taken in the page in one go (the list re-renders every 2 s).
ROW_STATE = """
const row = [...document.querySelectorAll('#jobs tbody tr')].find(r => r.cells[0].textContent === arguments[0]);
if (!row) return null;
const image = row.querySelector('img.preview'), link = row.querySelector('a.download');
const error = row.querySelector('.error');
return {status: row.dataset.status, cancel: !!row.querySelector('button.cancel'),
        error: error && error.textContent, href: link && link.href,
        preview: image && {loaded: image.complete && image.naturalWidth > 0, width: image.naturalWidth,
                           height: image.naturalHeight, alt: image.alt}};
"""


def state(browser, blob: str) -> dict | None:
    return browser.execute_script(ROW_STATE, blob)


def status_of(browser, blob: str) -> str | None:
    return (state(browser, blob) or {}).get("status")


def upload_from_page(browser, clip: Path, name: str, style: str = "19", scale: str = "0.5") -> None:
    renamed = clip.with_name(name)
    shutil.copyfile(clip, renamed)
    browser.find_element(By.ID, "file").send_keys(str(renamed))
    for field, value in (("style", style), ("scale", scale)):
        element = browser.find_element(By.ID, field)
        element.clear()
        element.send_keys(value)
    browser.find_element(By.ID, "upload-button").click()
    wait_for(lambda: f"Uploaded {name}" in browser.find_element(By.ID, "upload-status").text, 30,
             "the upload to finish")


def test_upload_follow_preview_reject_and_cancel_in_a_browser(stack, browser, make_clip, tmp_path, monkeypatch,
                                                               capsys):
    browser.get(f"{stack.api_url}/api/page")
    wait_for(lambda: "No jobs yet" in browser.find_element(By.ID, "jobs-status").text, 15, "the empty job list")

    # an upload from the page: a one-blob SAS, bytes straight to storage, the blob trigger starts the job
    clip = make_clip(frames=48, size="160x96")
    upload_from_page(browser, clip, "from-the-page.mp4")
    wait_for(lambda: status_of(browser, "from-the-page.mp4") in ("Running", "Completed"), 30, "the job row")
    wait_for(lambda: status_of(browser, "from-the-page.mp4") == "Completed", 150, "Completed on the page")
    done = wait_for(lambda: (now := state(browser, "from-the-page.mp4"))["preview"] and now["preview"]["loaded"]
                    and now, 15, "the preview image to load")
    # three frames side by side, each 320 px wide (scoring_job.preview): the upload above, styled below
    assert (done["preview"]["width"], done["preview"]["height"]) == (3 * TILE_WIDTH, 2 * TILE_WIDTH * 96 // 160)
    assert done["preview"]["alt"].startswith("Before and after for from-the-page.mp4")
    assert re.search(r"/output/from-the-page\.styled\.mp4\?.*sp=r&", done["href"])
    assert not done["cancel"]

    # the same name again: refused before a byte is sent, in words
    upload_from_page_refused = clip.with_name("from-the-page.mp4")
    browser.find_element(By.ID, "file").send_keys(str(upload_from_page_refused))
    browser.find_element(By.ID, "upload-button").click()
    wait_for(lambda: "exists already" in browser.find_element(By.ID, "upload-status").text, 15, "the refusal")

    # a rejected upload (submitted from the command line) shows its reason
    for key, value in stack.client_env().items():
        monkeypatch.setenv(key, value)
    bogus = tmp_path / "holiday-notes.mp4"
    bogus.write_bytes(b"these are notes, not a video " * 100)
    assert main(["submit", str(bogus)]) == 0
    wait_for(lambda: status_of(browser, "holiday-notes.mp4") == "Failed", 60, "the rejection on the page")
    reason = state(browser, "holiday-notes.mp4")["error"]
    assert reason.startswith("input rejected:") and "Orchestrator function" not in reason

    # cancel a running job from its row
    upload_from_page(browser, make_clip(frames=96, size="160x96"), "to-cancel.mp4", style="7")
    wait_for(lambda: status_of(browser, "to-cancel.mp4") == "Running", 30, "the job to run")
    browser.find_element(By.CSS_SELECTOR, "#jobs button.cancel[aria-label='Cancel the job for to-cancel.mp4']").click()
    wait_for(lambda: status_of(browser, "to-cancel.mp4") == "Terminated", 30, "the cancel on the page")
    assert state(browser, "to-cancel.mp4")["error"] == "Canceled."
    capsys.readouterr()

    shot = tmp_path / "jobs-page.png"
    browser.save_screenshot(str(shot))
    if os.environ.get("RESTYLE_DOCS_SCREENSHOT"):
        shutil.copyfile(shot, ROOT / "docs" / "jobs-page.png")


def test_the_page_runs_only_its_own_script_and_loads_nothing_from_elsewhere(stack, browser):
    browser.get(f"{stack.api_url}/api/page")
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#styles option"), 15, "the page's script to run")
    origins = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => new URL(e.name).origin)")
    storage = f"http://127.0.0.1:{stack.storage_port}"
    assert set(origins) <= {stack.api_url, storage}, origins
    html = browser.page_source
    assert "<script src" not in html and "<link" not in html  # everything inline: no CDN, no build step


def test_a_many_models_table_shows_its_partitions_and_gate_on_the_page(stack, browser, tmp_path):
    """A sales table dropped into tables/ appears beside the videos: partitions while it trains, and
    models trained, gate pass rate and where the forecasts are once it is done. Its row opens the
    forecast view: the gate's summary, a search by keys, and a partition's history, forecast and
    80/95% bands drawn as SVG; the drawn band, read back through the chart's scale, is the forecast
    Parquet's interval."""
    import io

    import pandas as pd
    from azure.storage.blob import BlobServiceClient
    from forecast_support import m3_table

    table = m3_table(4)
    first = table[table.store == table.store.iloc[0]]
    short = first.tail(8).assign(store="new-store")  # 8 points, fewer than min_length 30: a short history
    broken = first.assign(store="broken", sales=first.sales.where(first.index != first.index[2]))  # rejected
    data = io.BytesIO()
    pd.concat([table, short, broken]).to_csv(data, index=False)
    service = BlobServiceClient.from_connection_string(stack.connection)
    service.get_container_client("tables").upload_blob("weekly-sales.csv", data.getvalue(), metadata={
        "target_column": "sales", "model_set": "fast", "horizon": "6"})
    browser.get(f"{stack.api_url}/api/page")
    wait_for(lambda: status_of(browser, "weekly-sales.csv") == "Completed", 120, "the table's run on the page")
    row = browser.execute_script(
        "return [...document.querySelectorAll('#jobs tbody tr')]"
        ".find(r => r.cells[0].textContent === 'weekly-sales.csv').textContent")
    assert "5 models trained (1 short histories)" in row and "passed the gate" in row
    assert "many-models/weekly-sales/forecasts/" in row

    browser.find_element(By.CSS_SELECTOR, "button.forecast-open[aria-label='View the forecasts of weekly-sales.csv']"
                         ).click()
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#partitions tbody tr"), 15, "the partition list")
    counts = {b.get_attribute("data-status"): b.text for b in browser.find_elements(By.CSS_SELECTOR,
                                                                                    "#gate-summary button")}
    assert counts[""] == "All: 6" and counts["short_history"] == "Short history: 1" and counts["rejected"] == (
        "Rejected: 1")
    passed, fallback = (int(counts[k].rsplit(" ", 1)[1]) for k in ("passed", "fallback"))
    assert passed + fallback == 4
    browser.find_element(By.CSS_SELECTOR, "#gate-summary button[data-status='rejected']").click()
    wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#partitions tbody tr")) == 1, 15, "the filter")
    assert "1 target values are empty" in browser.find_element(By.CSS_SELECTOR, "#partitions tbody tr").text
    browser.find_element(By.CSS_SELECTOR, "#gate-summary button[data-status='']").click()

    # find the short history by its keys and draw it
    query = browser.find_element(By.ID, "partition-query")
    query.clear()
    query.send_keys("new-store")
    browser.find_element(By.CSS_SELECTOR, "#partition-search button[type='submit']").click()
    wait_for(lambda: browser.find_element(By.ID, "partition-matches").text == "1 partition.", 15, "the search")
    browser.find_element(By.CSS_SELECTOR, "#partitions button.partition").click()
    wait_for(lambda: browser.find_element(By.ID, "forecast-figure").is_displayed(), 15, "the chart")
    assert "Short history: 8 observations, fewer than min_length 30" in browser.find_element(
        By.ID, "forecast-model").text
    drawn = browser.execute_script("""
        const chart = document.getElementById('forecast-chart'), d = chart.dataset;
        const band = level => {
          const polygon = chart.querySelector(`polygon.band[data-level="${level}"]`);
          return polygon && polygon.getAttribute('points').trim().split(/\\s+/).map(p => p.split(',').map(Number));
        };
        const history = chart.querySelector('polyline.history').getAttribute('points').trim().split(/\\s+/);
        return {low: +d.valueLow, high: +d.valueHigh, top: +d.plotTop, bottom: +d.plotBottom,
                first: +d.firstStep, history: history.length, b80: band(80), b95: band(95)};""")
    assert drawn["history"] == drawn["first"] == 8

    def value(y: float) -> float:  # the chart's scale, inverted
        return drawn["low"] + (drawn["bottom"] - y) / (drawn["bottom"] - drawn["top"]) * (drawn["high"] - drawn["low"])

    output = service.get_container_client("output")
    [name] = [n for n in output.list_blob_names(name_starts_with="many-models/weekly-sales/forecasts/")
              if n.endswith(".parquet")]
    forecasts = pd.read_parquet(io.BytesIO(output.download_blob(name).readall()))
    expected = forecasts[forecasts.store == "new-store"].sort_values("ds")
    tolerance = (drawn["high"] - drawn["low"]) * 1e-4
    for level in (80, 95):
        points = drawn[f"b{level}"]
        assert len(points) == 2 * 6  # upper edge left to right, then the lower edge back
        upper, lower = points[:6], points[6:][::-1]
        assert [value(y) for _, y in upper] == pytest.approx(expected[f"hi_{level}"].tolist(), abs=tolerance)
        assert [value(y) for _, y in lower] == pytest.approx(expected[f"lo_{level}"].tolist(), abs=tolerance)
    assert (expected.lo_95 <= expected.lo_80).all() and (expected.hi_80 <= expected.hi_95).all()
    rows = browser.find_elements(By.CSS_SELECTOR, "#forecast-values tbody tr")
    assert len(rows) == 6 and "\u2013" in rows[0].get_attribute("textContent")  # "lo to hi", one a level (folded)
    figure = browser.find_element(By.ID, "forecast-figure")
    browser.execute_script("arguments[0].scrollIntoView()", figure)
    figure.screenshot(str(tmp_path / "forecast-view.png"))
    if os.environ.get("RESTYLE_DOCS_SCREENSHOT"):
        shutil.copyfile(tmp_path / "forecast-view.png", ROOT / "docs" / "forecast-view.png")


# What a modified client could do: ask for a 1,000-byte ticket, then PUT more through it.
OVERSIZE_PUT = """
const [name, done] = arguments;
(async () => {
  const ticket = await (await fetch("/api/uploads", {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({name, size: 1000})})).json();
  const put = await fetch(ticket.url, {method: "PUT", headers: ticket.headers, body: new Blob([new Uint8Array(4000)])});
  done({max_bytes: ticket.max_bytes, stored: put.status});
})().catch((error) => done({error: String(error)}));
"""


def sign_in_as(browser, stack, user: str) -> None:
    browser.get(f"{stack.api_url}/.auth/login/aad?user={user}&post_login_redirect_uri=/api/page")
    wait_for(lambda: f"Signed in as {user}@devhost" in browser.find_element(By.ID, "account").text, 15,
             f"the page signed in as {user}")


def test_a_signed_in_person_sees_only_their_jobs_and_no_upload_larger_than_its_ticket(stack, browser, make_clip,
                                                                                       tmp_path, monkeypatch, capsys):
    for key, value in stack.client_env().items():
        monkeypatch.setenv(key, value)
    notes = tmp_path / "the-keys-notes.mp4"
    notes.write_bytes(b"a job of the key's, started from the command line " * 50)
    assert main(["submit", str(notes)]) == 0
    key_job = capsys.readouterr().out.split("job ")[-1].strip()

    def keys_jobs() -> set[str]:
        with urllib.request.urlopen(f"{stack.api_url}/api/jobs") as answer:  # not signed in: the open stack's key
            return {job["id"] for job in json.loads(answer.read())["jobs"]}

    wait_for(lambda: key_job in keys_jobs(), 30, "the key's job")

    sign_in_as(browser, stack, "alice")
    wait_for(lambda: "No jobs yet" in browser.find_element(By.ID, "jobs-status").text, 15, "alice's empty list")
    account = browser.find_element(By.ID, "account").text
    assert "0 of 2 jobs running" in account and "GPU minutes today (UTC)" in account and "Sign out" in account
    upload_from_page(browser, make_clip(frames=24, size="160x96"), "alices-clip.mp4")
    wait_for(lambda: status_of(browser, "alices-clip.mp4") == "Completed", 150, "alice's job on her page")
    result = browser.execute_async_script(OVERSIZE_PUT, "alices-oversized.mp4")
    assert result == {"max_bytes": 1000, "stored": 201}, result  # storage cannot hold a SAS to a size...
    wait_for(lambda: status_of(browser, "alices-oversized.mp4") == "Failed", 60, "the oversized upload's rejection")
    reason = state(browser, "alices-oversized.mp4")["error"]  # ...the app does, and says so
    assert reason.startswith("input rejected: the upload is 4000 bytes, more than the 1000 bytes its upload ticket")
    shown = {row.get_attribute("data-job-id") and row.find_element(By.TAG_NAME, "th").text
             for row in browser.find_elements(By.CSS_SELECTOR, "#jobs tbody tr")}
    assert shown == {"alices-clip.mp4", "alices-oversized.mp4"}  # none of the key's jobs

    sign_in_as(browser, stack, "bob")
    wait_for(lambda: "No jobs yet" in browser.find_element(By.ID, "jobs-status").text, 15, "bob's empty list")
    browser.find_element(By.LINK_TEXT, "Sign out").click()  # back on the page, as nobody: the open stack's key
    wait_for(lambda: "Not signed in" in browser.find_element(By.ID, "account").text, 15, "the page signed out")
    wait_for(lambda: status_of(browser, "the-keys-notes.mp4"), 15, "the key's jobs again")
