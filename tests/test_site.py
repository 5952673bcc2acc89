"""The leaderboard site, opened in headless Chromium from the file system (no server, no CDN)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from reid_bench.leaderboard import build_leaderboards

REPO = Path(__file__).resolve().parent.parent


def _browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _dom(browser: str, url: str, tmp_path: Path) -> str:
    proc = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                           f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", url],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    build_leaderboards(out, REPO / "results")  # the committed results alone
    return out


def test_every_protocol_has_a_page_that_needs_nothing_online(site):
    data = json.loads((site / "leaderboard.json").read_text())
    index = (site / "index.html").read_text()
    for name in data["protocols"]:
        page = (site / f"{name}.html").read_text()
        assert f'href="{name}.html"' in index
        assert 'src="site.js"' in page and 'id="board-data"' in page
        assert "http://" not in page and "https://" not in page  # nothing fetched from a CDN
    assert (site / "site.js").stat().st_size < 40_000 and (site / "site.css").exists()


@pytest.mark.skipif(os.environ.get("REID_BENCH_NO_BROWSER") == "1", reason="CI could not install Chromium")
def test_a_page_sorts_by_a_column_and_draws_its_plots_in_chromium(site, tmp_path):
    browser = _browser()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: .ci/run installs it (apt-get install chromium)")
        pytest.skip("no Chromium on this machine (.ci/run installs it)")
    board = json.loads((site / "leaderboard.json").read_text())["protocols"]["synth-gait-retrieval"]
    dom = _dom(browser, (site / "synth-gait-retrieval.html").as_uri() + "#sort=mAP&dir=asc", tmp_path)
    tables = dict(re.findall(r'<table class="board" data-fold="([^"]+)" data-version="1">(.*?)</table>', dom, re.S))
    assert set(tables) == set(board["versions"]["1"])  # each version's folds in tables of their own
    for fold, rows in board["versions"]["1"].items():
        shown = re.findall(r'<tr data-model="([^"]+)"', tables[fold])
        by_map = sorted(rows, key=lambda r: r["metrics"]["mAP"]["mean"])  # ascending, ties in table order
        assert shown == [r["model"] for r in by_map]
        assert re.search(r'<th data-key="mAP" class="sorted-asc">mAP</th>', tables[fold])
        ranked = [r for r in rows if r["rank"] is not None and r["rank"] <= 3]
        cmc = re.search(rf'<svg [^>]*class="cmc" data-fold="{fold}" data-version="1">(.*?)</svg>', dom, re.S).group(1)
        assert cmc.count('class="mean"') == len(ranked)  # the first three rows, one mean curve each
        scatter = re.search(rf'<svg [^>]*class="scatter" data-fold="{fold}" data-version="1">(.*?)</svg>', dom, re.S).group(1)
        assert scatter.count('class="seed"') == sum(len(r["seeds"]) for r in rows)
    first = board["versions"]["1"]["A-B"][0]
    assert "top</td>" in tables["A-B"] and f'{first["metrics"]["mAP"]["mean"]:.1f} ±' in tables["A-B"]
    filtered = _dom(browser, (site / "synth-gait-retrieval.html").as_uri() + "#filter=lstm", tmp_path)
    assert set(re.findall(r'<tr data-model="([^"]+)"', filtered)) == {"lstm-1", "lstm-m"}
    rows_ab = board["versions"]["1"]["A-B"]
    commit = next(r["commit"] for r in rows_ab if r["model"] == "mg-scr")  # any column filters: the commit
    by_commit = _dom(browser, (site / "synth-gait-retrieval.html").as_uri() + f"#filter={commit}", tmp_path)
    expected = {r["model"] for r in rows_ab if r["commit"] == commit}
    assert "mg-scr" in expected and len(expected) < len(rows_ab)
    shown_ab = re.search(r'<table class="board" data-fold="A-B" data-version="1">(.*?)</table>', by_commit, re.S).group(1)
    assert set(re.findall(r'<tr data-model="([^"]+)"', shown_ab)) == expected


def _need_browser() -> str:
    if os.environ.get("REID_BENCH_NO_BROWSER") == "1":
        pytest.skip("CI could not install Chromium")
    browser = _browser()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: .ci/run installs it (apt-get install chromium)")
        pytest.skip("no Chromium on this machine (.ci/run installs it)")
    return browser


def test_a_sort_key_from_the_address_is_a_key_or_a_header_or_said_to_be_neither(site, tmp_path):
    browser = _need_browser()
    page = (site / "synth-gait-retrieval.html").as_uri()
    by_header = _dom(browser, page + "#sort=Rank-1&dir=desc", tmp_path)  # the header text, as a reader copies it
    assert re.search(r'<th data-key="rank1" class="sorted-desc">Rank-1</th>', by_header)
    assert 'id="sort-warning"' not in by_header
    unknown = _dom(browser, page + "#sort=Rank-one", tmp_path)
    warning = re.search(r'<p class="warning" id="sort-warning">(.*?)</p>', unknown, re.S)
    assert warning and "Rank-one" in warning.group(1) and "sorted by rank" in warning.group(1)
    assert re.search(r'<th data-key="rank" class="sorted-asc">#</th>', unknown)


def test_every_board_fits_a_1400_pixel_window(site, tmp_path):
    """Each page with measured rows, in a 1400 px window: the page never scrolls sideways and,
    with the default columns, no board needs its own scroll box either (no column cut or hidden).
    The measuring script is appended to a copy of the page, after site.js has drawn it."""
    browser = _need_browser()
    boards = json.loads((site / "leaderboard.json").read_text())["protocols"]
    names = sorted(n for n, b in boards.items() if b["versions"])
    assert names
    measure = """<pre id="measured"></pre><script>(function () {
  var d = document.documentElement;
  document.getElementById("measured").textContent = JSON.stringify({page: d.scrollWidth, window: d.clientWidth,
    tables: document.querySelectorAll("table.board").length,
    hidden: Array.prototype.map.call(document.querySelectorAll(".table-scroll"), function (b) {
      return b.scrollWidth - b.clientWidth; })});
})();</script></body>"""
    for name in names:
        copy = site / f"measure-{name}.html"
        copy.write_text((site / f"{name}.html").read_text().replace("</body>", measure))
        dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                              "--window-size=1400,900", f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                              copy.as_uri()], capture_output=True, text=True, timeout=120)
        assert dom.returncode == 0, dom.stderr[-2000:]
        m = json.loads(re.search(r'<pre id="measured">(.*?)</pre>', dom.stdout, re.S).group(1))
        assert m["window"] >= 1380 and m["tables"] > 0, (name, m)
        assert m["page"] <= m["window"], (name, m)  # the page itself never scrolls sideways
        assert all(px <= 1 for px in m["hidden"]), (name, m)  # no board hides a column at 1400 px
