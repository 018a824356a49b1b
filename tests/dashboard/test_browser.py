"""The dashboard in a real browser (Debian's chromium + chromium-driver through selenium),
over the simulated cluster with one promoted and one rolled-back release."""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from controller.adapters.kube.api import KubeApi
from controller.adapters.kube.client import api_client
from controller.core.canary import template_hash
from controller.dashboard.app import dashboard_app, serve
from tests.runtime.harness import NS, Env, change_for, deployment_doc, running, wait

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@dataclass
class Site:
    url: str
    promoted: str
    rolled_back: str
    browser: webdriver.Chrome
    env: Env

    def open(self, path: str) -> str:
        self.browser.get(self.url + path)
        return self.browser.page_source


def _ship(env: Env, image: str) -> str:
    env.set_image(image)
    return f"web-{template_hash(env.deployment('web')['spec']['template'])}"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("dashboard")
    with running(tmp) as env:
        env.sim.store.create("deployments", deployment_doc())
        wait(lambda: env.sim.deployment_ready(NS, "web-primary"), timeout=20)
        good = _ship(env, "web:2")
        env.wait_phase(["Promoted"], name=good)
        bad = _ship(env, "web:3-bad")
        env.wait_phase(["RolledBack"], name=bad)
        server, _ = serve(dashboard_app(KubeApi(api_client(str(env.kubeconfig)))), "127.0.0.1", 0)
        options = Options()
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
            options.add_argument(arg)
        browser = webdriver.Chrome(service=Service(DRIVER), options=options)
        browser.set_window_size(1280, 1600)
        try:
            yield Site(f"http://127.0.0.1:{server.server_port}", good, bad, browser, env)
        finally:
            browser.quit()
            server.shutdown()
            server.server_close()


def _cells(site: Site, table: str) -> list[list[str]]:
    rows = site.browser.find_elements(By.CSS_SELECTOR, f"#{table} tbody tr")
    return [[td.text for td in row.find_elements(By.TAG_NAME, "td")] for row in rows]


def test_lanes_show_mode_budget_and_scorecard(site: Site) -> None:
    site.open("/lanes")
    [row] = _cells(site, "lanes")
    assert row[0] == "web-lane" and row[1] == "enforce"
    assert "1 of the last" in row[4]
    assert "promoted 1, rolled back 1" in row[5]


def test_the_rolled_back_release_shows_its_evidence_chart(site: Site) -> None:
    source = site.open(f"/releases/{NS}/{site.rolled_back}")
    b = site.browser
    assert b.find_element(By.ID, "phase").text == "RolledBack"
    assert b.find_element(By.ID, "decision").text.startswith("critical check errors Fail")
    provenance = dict((r[0], r[1]) for r in _cells(site, "provenance"))
    assert provenance["agent"] == "claude-code" and provenance["change"] == change_for("web:3-bad")
    chart = b.find_element(By.CSS_SELECTOR, 'svg.chart[data-check="errors"]')
    assert chart.is_displayed() and chart.size["width"] >= 700
    canary = chart.find_element(By.CSS_SELECTOR, "polyline.canary")
    assert (canary.get_attribute("points") or "").strip()  # one point per measurement
    limit = chart.find_element(By.CSS_SELECTOR, "line.limit")
    assert limit.get_attribute("data-value") == "0.05"  # the lane's real limit
    assert "limit 0.05" in chart.text
    failed = chart.find_elements(By.CSS_SELECTOR, "circle.failed")
    assert failed and failed[0].is_displayed(), "the failing point is drawn and marked"
    steps = [g.text for g in chart.find_elements(By.CSS_SELECTOR, "g.step-boundary")]
    assert steps and steps[0] == "step 1/2 (50%)"
    assert chart.find_element(By.CSS_SELECTOR, "g.decision").text == "rolling_back"
    measured = _cells(site, "measurements")
    assert any(r[3] == "Fail" and r[4] == "0.3" and r[6] == "0.05" for r in measured), measured
    token = (site.env.kubeconfig.read_text().split("token:")[1:] or [""])[0].split()[:1]
    assert not token or token[0] not in source  # nothing secret on the page


def test_the_promoted_release_shows_every_step(site: Site) -> None:
    site.open(f"/releases/{NS}/{site.promoted}")
    assert site.browser.find_element(By.ID, "phase").text == "Promoted"
    chart = site.browser.find_element(By.CSS_SELECTOR, 'svg.chart[data-check="errors"]')
    steps = [g.text for g in chart.find_elements(By.CSS_SELECTOR, "g.step-boundary")]
    assert steps == ["step 1/2 (50%)", "step 2/2 (100%)"]
    assert chart.find_element(By.CSS_SELECTOR, "g.decision").text == "promoting"
    assert not chart.find_elements(By.CSS_SELECTOR, "circle.failed")


def test_history_filters_by_outcome_and_agent(site: Site) -> None:
    site.open("/history?outcome=RolledBack")
    assert [r[0] for r in _cells(site, "history")] == [site.rolled_back]
    site.open("/history?agent=claude-code&lane=web-lane")
    assert {r[0] for r in _cells(site, "history")} == {site.promoted, site.rolled_back}
    site.open("/history?agent=someone-else")
    assert _cells(site, "history") == []
    # The form submits the filters.
    site.open("/history")
    site.browser.find_element(
        By.CSS_SELECTOR, 'select[name="outcome"] option[value="Promoted"]'
    ).click()
    site.browser.find_element(By.CSS_SELECTOR, "#filters button").click()
    wait(lambda: "outcome=Promoted" in site.browser.current_url, timeout=5)
    assert [r[0] for r in _cells(site, "history")] == [site.promoted]


def test_nothing_in_flight_and_an_unknown_release_is_a_404_page(site: Site) -> None:
    site.open("/releases")
    assert site.browser.find_element(By.ID, "in-flight").text == "none"
    source = site.open(f"/releases/{NS}/no-such-release")
    assert site.browser.find_element(By.ID, "not-found").text == (
        f"release {NS}/no-such-release not found."
    )
    assert "Traceback" not in source
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{site.url}/releases/{NS}/no-such-release", timeout=5)
    assert err.value.code == 404


def test_no_mutations_from_the_web(site: Site) -> None:
    request = urllib.request.Request(f"{site.url}/releases", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=5)
    assert err.value.code == 405
