"""`-f html`: one self-contained page, checked in a real headless Chromium (Debian's package).

The page is rendered by ``chromium --headless --dump-dom`` (no driver: what the browser's own
script made of the page) and driven by selenium through chromedriver for sorting and filtering.
Console errors (an uncaught exception, a CSP refusal) fail the tests.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from .conftest import PREFIX, GitRepo, Result, write_files

Run = Callable[..., Result]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
HOSTILE = "</script><img src=x onerror=alert(1)><!--"
AUTHOR = 'Mallory &lt;b&gt; " onmouseover="alert(1)'  # git drops < and > from names


def commit_at(repo: GitRepo, day: str, files: dict[str, str]) -> None:
    for rel, content in files.items():
        repo.write(rel, content)
    repo.git("add", "-A")
    repo.env["GIT_AUTHOR_DATE"] = repo.env["GIT_COMMITTER_DATE"] = f"{day}T12:00:00+00:00"
    repo.git("commit", "-q", "-m", f"change of {day}")


def _flags(profile: Path) -> list[str]:
    return [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
    ]


def chromium(page: Path, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert os.access(CHROMIUM, os.X_OK), (
        "Chromium is needed: apt-get install -y chromium chromium-driver (as .ci/run does)"
    )
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    return subprocess.run(
        [CHROMIUM, *_flags(profile), "--enable-logging=stderr", "--v=0", *args, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_clean_console(stderr: str) -> None:
    console = [ln for ln in stderr.splitlines() if "CONSOLE" in ln]
    assert not [ln for ln in console if "Uncaught" in ln or "Refused" in ln], console
    assert "Uncaught" not in stderr and "Content Security Policy" not in stderr


class Tags(HTMLParser):
    """Every element of a DOM dump with its attributes, and the text of the page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.text.append(data)

    def find(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        return [
            a
            for t, a in self.tags
            if t == tag and all(a.get(k.rstrip("_")) == v for k, v in attrs.items())
        ]


def parse(dom: str) -> Tags:
    p = Tags()
    p.feed(dom)
    return p


@dataclass
class Api:
    url: str
    answers: dict[str, int]


@pytest.fixture
def api() -> Iterator[Api]:
    """A loopback Kubeadapt API: 200 (live), 403 (live-limited) or 401 (inactive) by key."""
    answers: dict[str, int] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            key = self.headers.get("Authorization", "").removeprefix("Bearer ")
            code = answers.get(key, 401)
            body = json.dumps(
                {"id": "org_42", "name": "Acme <b>Corp</b>"} if code == 200 else {"error": "no"}
            ).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield Api(f"http://127.0.0.1:{server.server_address[1]}", answers)
    server.shutdown()
    server.server_close()


@dataclass
class Fleet:
    html: Path
    report: dict[str, object]
    keys: list[str]


def make_fleet(
    tmp_path: Path, make_repo: Callable[[Path], GitRepo], run_cli: Run, keys: list[str]
) -> Fleet:
    """Two repositories swept at once, one key in both, a hostile path and author."""
    live, limited, dead, other = keys
    shop = make_repo(tmp_path / "shop-api")
    commit_at(shop, "2023-03-10", {"src/config.py": f'KEY = "{live}"\n', "README.md": "# shop\n"})
    shop.env["GIT_AUTHOR_NAME"] = AUTHOR
    commit_at(shop, "2023-08-02", {f"tests/{HOSTILE}.env": f"K={dead}\n"})
    shop.env["GIT_AUTHOR_NAME"] = "Test Author"
    commit_at(shop, "2024-02-20", {".github/workflows/ci.env": f"KUBEADAPT={limited}\n"})
    infra = make_repo(tmp_path / "infra")
    for i in range(3):
        commit_at(infra, f"2023-0{i + 1}-15", {"deploy/values.yaml": f"replicas: {i}\n"})
    commit_at(
        infra, "2023-11-05", {"deploy/values.yaml": f"apiKey: {live}\n", "ops/.env": f"K={other}\n"}
    )
    commit_at(infra, "2024-05-14", {"deploy/staging.yaml": f"apiKey: {live}\n"})
    html = tmp_path / "report.html"
    js = tmp_path / "report.json"
    res = run_cli("git", "shop-api", "infra", "-o", html, "-o", js, "-q", cwd=tmp_path)
    assert res.returncode == 1, res.output
    res.assert_no_leak(*keys)
    return Fleet(html, json.loads(js.read_text()), keys)


@pytest.fixture
def fleet(
    tmp_path: Path,
    make_repo: Callable[[Path], GitRepo],
    run_cli: Run,
    keys: Callable[[int], list[str]],
) -> Fleet:
    return make_fleet(tmp_path, make_repo, run_cli, keys(4))


def test_page_renders_in_chromium(fleet: Fleet, tmp_path: Path) -> None:
    page = fleet.html.read_text()
    for k in fleet.keys:  # no key body anywhere without --show-secrets
        assert k[len(PREFIX) :] not in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in page and " src=" not in page.split("<body>")[0]
    res = chromium(fleet.html, tmp_path, "--dump-dom")
    assert res.returncode == 0, res.stderr[-2000:]
    assert_clean_console(res.stderr)
    dom = parse(res.stdout)
    body = dom.find("body")[0]
    assert body.get("data-rendered") == "4"  # the script ran to its end
    rows = [a for a in dom.find("tr") if "data-status" in a]
    assert [a["data-status"] for a in rows] == ["unchecked"] * 4
    text = "".join(dom.text)
    # the live key: in both repositories, first introduced in shop-api, and where else it is
    assert "infra, shop-api" in text
    assert "shop-api:src/config.py:1:8" in text
    assert "infra:deploy/staging.yaml:1:9" in text and "infra:deploy/values.yaml:1:9" in text
    # hostile strings are text, never markup
    assert f"shop-api:tests/{HOSTILE}.env:1:3" in text
    assert AUTHOR in text  # entities stay entities: nothing was parsed as HTML
    assert not dom.find("img") and not dom.find("b", class_="x")
    assert len([t for t, _ in dom.tags if t == "script"]) == 2  # the data block and the page's own
    # the timeline: a bar per month from the first introduction (2023-03) to the last (2024-02)
    bars = dom.find("rect", class_="bar")
    assert len(bars) == 12 and dom.find("table", id="intro-list")
    assert [b["height"] != "0" for b in bars] == [
        m in (0, 5, 8, 11) for m in range(12)
    ]  # live 2023-03, the fixture 2023-08, ops/.env 2023-11, the CI key 2024-02
    # counts per repository
    assert "shop-api" in text and "(this scan)" not in text
    assert "3 of 4 keys shown" not in text and "4 of 4 keys shown" in text


def page_data(html: str) -> dict[str, object]:
    """The JSON block of a page, as its script reads it."""
    start = html.index('<script type="application/json" id="kascan-data">')
    block = html[start:].split(">", 1)[1].split("</script>", 1)[0]
    assert "<" not in block and ">" not in block and "&" not in block
    doc: dict[str, object] = json.loads(block)
    return doc


def test_merged_fleet_report_and_lossless_data(fleet: Fleet, tmp_path: Path, run_cli: Run) -> None:
    merged = tmp_path / "merged.html"
    js = fleet.html.with_name("report.json")  # the sweep's JSON report
    res = run_cli("merge", js, "-o", merged, "-q")
    assert res.returncode == 1, res.output
    data = page_data(merged.read_text())
    keys = data["keys"]
    assert isinstance(keys, list) and len(keys) == 4
    places = {loc["path"] for k in keys for loc in k["locations"]}
    assert f"tests/{HOSTILE}.env" in places  # escaped for the page, exactly the same when read
    repos = data["repos"]
    assert isinstance(repos, list)
    assert [(r["repo"], r["keys"], r["commits"]) for r in repos] == [
        ("shop-api", 3, 3),
        ("infra", 2, 5),
    ]
    assert page_data(fleet.html.read_text())["keys"] == keys  # the sweep's page says the same


def test_screenshot_for_the_readme(fleet: Fleet, tmp_path: Path) -> None:
    png = tmp_path / "shot.png"
    res = chromium(fleet.html, tmp_path, "--window-size=1280,1000", f"--screenshot={png}")
    assert res.returncode == 0, res.stderr[-2000:]
    assert_clean_console(res.stderr)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1280, 1000)
    assert len(data) > 20_000  # drawn, not blank
    target = os.environ.get("KASCAN_DOCS_SCREENSHOT")  # regenerates docs/html-report.png
    if target:
        shutil.copyfile(png, target)


def test_sort_and_filter_in_a_driven_browser(fleet: Fleet, tmp_path: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in _flags(tmp_path / "selenium-profile"):
        opts.add_argument("--headless=new" if flag == "--headless" else flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        driver.get(fleet.html.as_uri())

        def visible() -> list[str]:
            rows = driver.find_elements(By.CSS_SELECTOR, "#keys tbody tr")
            return [r.get_attribute("data-status") or "" for r in rows if r.is_displayed()]

        def shown() -> str:
            return driver.find_element(By.ID, "shown").text

        def first_places() -> list[str]:
            rows = driver.find_elements(By.CSS_SELECTOR, "#keys tbody tr")
            return [
                r.find_elements(By.TAG_NAME, "td")[3].text.splitlines()[0]
                for r in rows
                if r.is_displayed()
            ]

        assert len(visible()) == 4 and shown() == "4 of 4 keys shown"
        search = driver.find_element(By.ID, "filter")
        search.send_keys("staging.yaml")  # a place other than the first
        assert first_places() == ["shop-api:src/config.py:1:8"]
        assert shown() == "1 of 4 keys shown"
        search.clear()
        search.send_keys("MALLORY &LT;B")  # case-insensitive, over the first commit's author
        assert first_places() == [f"shop-api:tests/{HOSTILE}.env:1:3"]
        search.clear()
        search.send_keys(" ")  # clear() sends no input event; a blank filter shows all
        assert shown() == "4 of 4 keys shown"
        Select(driver.find_element(By.ID, "status")).select_by_value("live")
        assert visible() == [] and shown() == "0 of 4 keys shown"
        Select(driver.find_element(By.ID, "status")).select_by_value("unchecked")
        assert len(visible()) == 4
        # sort by the number of places, most first, then fewest first
        places = driver.find_elements(By.CSS_SELECTOR, "#keys th")[5]
        places.click()
        counts = [
            int(r.find_elements(By.TAG_NAME, "td")[5].text)
            for r in driver.find_elements(By.CSS_SELECTOR, "#keys tbody tr")
        ]
        assert counts == sorted(counts) and counts[-1] == 3
        assert places.get_attribute("aria-sort") == "ascending"
        places.click()
        assert first_places()[0] == "shop-api:src/config.py:1:8"  # the key in 3 places
        assert places.get_attribute("aria-sort") == "descending"
        # sort by first introduction: oldest first
        driver.find_elements(By.CSS_SELECTOR, "#keys th")[3].click()
        assert first_places() == [
            "shop-api:src/config.py:1:8",
            f"shop-api:tests/{HOSTILE}.env:1:3",
            "infra:ops/.env:1:3",
            "shop-api:.github/workflows/ci.env:1:11",
        ]
        # the repository table sorts by keys
        repo_heads = driver.find_elements(By.CSS_SELECTOR, "#repos th")
        repo_heads[1].click()
        names = [
            r.find_elements(By.TAG_NAME, "td")[0].text
            for r in driver.find_elements(By.CSS_SELECTOR, "#repos tbody tr")
        ]
        assert names == ["infra", "shop-api"]  # 2 keys, then 3
        errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        assert errors == []
    finally:
        driver.quit()


def test_statuses_from_verification(
    tmp_path: Path, git_repo: GitRepo, run_cli: Run, api: Api, keys: Callable[[int], list[str]]
) -> None:
    live, limited, dead = keys(3)
    api.answers.update({live: 200, limited: 403})
    commit_at(git_repo, "2024-01-05", {"a.env": f"A={dead}\n"})
    commit_at(git_repo, "2024-03-05", {"b.env": f"B={live}\n", "c.env": f"C={limited}\n"})
    out = tmp_path / "v.html"
    res = run_cli("git", git_repo.path, "--verify", "--api-url", api.url, "-o", out, "-q")
    assert res.returncode == 1, res.output
    dom = chromium(out, tmp_path, "--dump-dom")
    assert_clean_console(dom.stderr)
    tags = parse(dom.stdout)
    rows = [a["data-status"] for a in tags.find("tr") if "data-status" in a]
    assert rows == ["live", "live-limited", "inactive"]  # the most alarming first
    text = "".join(tags.text)
    assert "Acme <b>Corp</b>" in text  # the API's organization name, as text (not bold "Corp")
    assert len(tags.find("rect", class_="bar")) == 3  # 2024-01, 2024-02 (none), 2024-03
    assert "live keys" in text  # the summary card exists when verified


def test_plain_scan_show_secrets_and_extension(
    tmp_path: Path, run_cli: Run, keys: Callable[[int], list[str]]
) -> None:
    a, b = keys(2)
    tree = tmp_path / "tree"
    write_files(tree, {"a.env": f"A={a}\n", "b/c.env": f"B={b}\nA={a}\n"})
    res = run_cli("scan", tree, "-f", "html")
    assert res.returncode == 1
    res.assert_no_leak(a, b)
    assert res.stdout.startswith("<!DOCTYPE html>")
    # -o FILE.html picks the format from the extension; --show-secrets shows the keys
    out = tmp_path / "r.html"
    run_cli("scan", tree, "-o", out, "--show-secrets", "-q")
    assert a in out.read_text() and b in out.read_text()
    assert "treat the file as a secret" in out.read_text()
    page = tmp_path / "plain.html"
    page.write_text(res.stdout)
    dom = chromium(page, tmp_path, "--dump-dom")
    assert_clean_console(dom.stderr)
    tags = parse(dom.stdout)
    text = "".join(tags.text)
    assert [a["data-status"] for a in tags.find("tr") if "data-status" in a] == ["unchecked"] * 2
    assert "No commit dates: this was not a scan of git history." in text
    assert "(this scan)" in text  # one row for the tree in the repository table
    assert "a.env:1:3" in text and "b/c.env:2:3" in text


def test_no_findings_is_a_valid_page(tmp_path: Path, run_cli: Run) -> None:
    write_files(tmp_path / "tree", {"a.txt": "nothing here\n"})
    out = tmp_path / "empty.html"
    res = run_cli("scan", tmp_path / "tree", "-o", out)
    assert res.returncode == 0
    dom = chromium(out, tmp_path, "--dump-dom")
    assert_clean_console(dom.stderr)
    tags = parse(dom.stdout)
    assert tags.find("body")[0].get("data-rendered") == "0"
    assert "0 of 0 keys shown" in "".join(tags.text)
