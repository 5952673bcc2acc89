"""The documentation's figures and the sentences that describe them, made from the committed boards.

    python tools/docs_images.py            # or: make docs-images

- ``docs/img/leaderboard-site.png``: ``leaderboards/synth-gait-retrieval.html`` in headless
  Chromium at 1400 x 900, as a reader opens it;
- ``docs/img/mlflow-runs.png``: MLflow's UI on a small store this script fills (one d13 run on
  synth-gait), opened on the experiment's runs as the docs tell a reader to open it;
- the text between ``<!-- figure-text: NAME -->`` and ``<!-- /figure-text -->`` in the docs: what the
  leaderboard figure shows (first row, ties), written from ``leaderboards/leaderboard.json``;
- ``docs/img/figures.json``: for each figure the SHA-256 of the files it was drawn from and of the
  image. ``tests/test_docs.py`` checks that these match the committed boards, so a board rebuilt
  without its figure fails the suite instead of leaving a picture of a board that no longer exists.

Needs Chromium (``apt-get install chromium``); the test that checks the figures does not.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
IMG = REPO / "docs" / "img"
MANIFEST = IMG / "figures.json"
BOARD = "synth-gait-retrieval"
#: The figures made from committed files: image -> the files it shows (relative to the repository).
SOURCES = {"leaderboard-site.png": [f"leaderboards/{BOARD}.html", "leaderboards/site.js", "leaderboards/site.css"]}
#: Docs that carry generated figure text.
TEXT_DOCS = ["docs/leaderboards-and-results.md"]
WINDOW = "1400,900"
MLFLOW_LINK = "#/experiments/{id}/runs?workflowType=machine_learning"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def source_hashes(name: str) -> dict[str, str]:
    return {rel: sha256(REPO / rel) for rel in SOURCES[name]}


def figure_text(name: str) -> str:
    """What the leaderboard figure shows, from the committed board data: its first fold's first
    row and which rows its bootstrap interval calls tied with it."""
    if name != "leaderboard-site":
        raise KeyError(name)
    board = json.loads((REPO / "leaderboards" / "leaderboard.json").read_text())["protocols"][BOARD]
    version = min(board["versions"], key=lambda v: [int(p) for p in v.split(".")])  # the page's first section
    fold, rows = next(iter(board["versions"][version].items()))
    ranked = [r for r in rows if r["rank"] is not None]
    first = min(ranked, key=lambda r: r["rank"])
    score = board["main_score"]
    label = {"mAP": "mAP", "rank1": "Rank-1"}.get(score, score)
    tied = [r for r in ranked if r is not first and (r.get("bootstrap") or {}).get("vs_top", {}).get("tied")]
    mean = first["metrics"][score]["mean"]
    text = (f"The figure is `{BOARD}` (protocol v{version}), fold {fold}: {len(ranked)} ranked rows, "
            f"{first['model']} ({first['config']}) first at {mean:.1f} {label}")
    if tied:
        names = ", ".join(f"{r['model']} ({r['config']})" for r in tied)
        gap = max(abs(r["bootstrap"]["vs_top"]["difference"]) for r in tied)
        text += (f"; {len(tied)} row{'s' if len(tied) != 1 else ''} within {gap:.1f} points of it "
                 f"{'are' if len(tied) != 1 else 'is'} tied with it ({names}), as its 95% interval contains 0")
    else:
        text += "; no other row is tied with it (every interval excludes 0)"
    return text + "."


MARKER = re.compile(r"(<!-- figure-text: ([\w-]+) -->\n)(.*?)(<!-- /figure-text -->)", re.S)


def docs_text(path: Path) -> str:
    """The doc with every figure-text block as the committed boards say it should read."""
    return MARKER.sub(lambda m: m.group(1) + figure_text(m.group(2)) + "\n" + m.group(4), path.read_text())


def browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    sys.exit("docs_images: Chromium is needed (apt-get install chromium)")


def screenshot(url: str, out: Path, profile: Path, budget_ms: int = 5000) -> None:
    proc = subprocess.run([browser(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--virtual-time-budget={budget_ms}", f"--window-size={WINDOW}",
                           f"--user-data-dir={profile}", f"--screenshot={out}", url],
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 or not out.exists():
        sys.exit(f"docs_images: Chromium could not draw {url}: {proc.stderr[-500:]}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mlflow_figure(work: Path, out: Path) -> None:
    """A store with one small run, served by ``mlflow server``, and its runs page."""
    bin_dir = Path(sys.executable).parent
    uri = f"sqlite:///{work / 'mlflow.db'}"
    subprocess.run([str(bin_dir / "reid-bench"), "run", "--model", "d13", "--protocol", "synth-gait", "--seeds", "2",
                    "--no-ray", "--tracking-uri", uri, "--set", "data.identities=6",
                    "--set", "data.train_sequences=2", "--set", "data.test_sequences=1"],
                   cwd=work, check=True, capture_output=True, timeout=600)
    port = free_port()
    server = subprocess.Popen([str(bin_dir / "mlflow"), "server", "--backend-store-uri", uri, "--host", "127.0.0.1",
                               "--port", str(port), "--artifacts-destination", str(work / "artifacts")],
                              cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    sys.exit("docs_images: mlflow server did not start")
                time.sleep(0.5)
        screenshot(f"http://127.0.0.1:{port}/" + MLFLOW_LINK.format(id=1), out, work / "profile", budget_ms=20000)
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    IMG.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        site = IMG / "leaderboard-site.png"
        screenshot((REPO / "leaderboards" / f"{BOARD}.html").as_uri(), site, work / "profile")
        manifest[site.name] = {"sources": source_hashes(site.name), "sha256": sha256(site), "window": WINDOW}
        runs = IMG / "mlflow-runs.png"
        mlflow_figure(work, runs)
        manifest[runs.name] = {"sources": {}, "sha256": sha256(runs), "window": WINDOW,
                               "note": "a fresh store's runs page; it shows the UI, not committed numbers"}
    for rel in TEXT_DOCS:
        path = REPO / rel
        path.write_text(docs_text(path))
    MANIFEST.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    for name in manifest:
        print(f"docs/img/{name}")
    print(f"{os.path.relpath(MANIFEST, REPO)}; figure text in {', '.join(TEXT_DOCS)}")


if __name__ == "__main__":
    main()
