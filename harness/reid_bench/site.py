"""The leaderboard site: ``index.html`` and one page per protocol, working offline from the file
system (no CDN, no server: each page carries its board as JSON, and one small script, ``site.js``,
draws tables and plots from it as inline SVG).

On a protocol page: sort by any column (click a header; ``#sort=mAP&dir=asc`` in the address does
the same and can be shared), filter rows by text, toggle metric columns, per-seed values on hover,
the published value beside the measured one with the difference and its bootstrap interval, the
CMC curves of the ticked rows overlaid (mean over seeds, with the seeds' range as a band), a
per-seed scatter of the main score, and commit, date and versions per row (links to the MLflow
runs when the results came from an MLflow server).
"""

from __future__ import annotations

import html
import json
from typing import Any

METRIC_ORDER = ["rank1", "rank5", "rank10", "mAP", "map_trapz", "mINP", "nAUC", "roc_auc_micro", "sequence_accuracy"]


def _row_data(board: Any, r: Any) -> dict[str, Any]:
    from reid_bench.leaderboard import PERCENT_METRICS, _difference

    metrics = {}
    for m in METRIC_ORDER:
        cell = r.cells.get(m)
        if cell is None:
            continue
        scale = 100.0 if m in PERCENT_METRICS else 1.0
        metrics[m] = {"mean": None if cell.mean is None else round(scale * cell.mean, 2),
                      "std": None if cell.std is None else round(scale * cell.std, 2),
                      "seeds": {str(s): round(scale * vals[m], 2) for s, vals in sorted(r.per_seed.items()) if m in vals}}
    diff = _difference(board, r)
    return {"rank": r.rank, "model": r.model, "config": r.config, "complete": r.complete, "control": r.control,
            "tuned": r.tuned or None, "n": f"{len(r.seeds)}/{len(r.expected_seeds)}", "params": r.params,
            "metrics": metrics, "paper": r.paper, "paper_status": r.paper_status,
            "paper_difference": None if diff is None else round(diff, 2), "bootstrap": r.bootstrap,
            "cmc": {str(s): c for s, c in sorted(r.cmc.items())}, "commit": r.commit, "date": r.date,
            "versions": r.versions, "run_id": r.run_id, "links": {str(s): u for s, u in sorted(r.links.items())}}


def board_page_data(board: Any) -> dict[str, Any]:
    from reid_bench.leaderboard import LABELS, _section_title

    sections = [{"title": _section_title(board, version, fold), "fold": fold, "version": version,
                 "rows": [_row_data(board, r) for r in board.rows[(version, fold)]]}
                for version, fold in board.sections()]
    present = [m for m in METRIC_ORDER if any(m in row["metrics"] for s in sections for row in s["rows"])]
    return {"name": board.name, "mode": board.mode, "main_score": board.main_score,
            "higher_is_better": board.higher_is_better, "reference_score": board.reference_score,
            "reference_source": board.reference_source, "columns": board.columns, "metrics": present,
            "labels": {m: LABELS.get(m, m) for m in present}, "sections": sections}


def _static(name: str) -> str:
    """The page script and style sheet, shipped in ``reid_bench/site_static`` and copied beside the pages."""
    from importlib.resources import files

    return files("reid_bench").joinpath("site_static", name).read_text(encoding="utf-8")


def _page(title: str, body: str, data: dict[str, Any] | None = None) -> str:
    payload = ""
    if data is not None:  # "</" cannot end the script early: JSON escapes it
        text = json.dumps(data, sort_keys=True, separators=(",", ":")).replace("</", "<\\/")
        payload = f'<script id="board-data" type="application/json">{text}</script>\n'
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<link rel="stylesheet" href="site.css"></head><body>\n{body}\n{payload}'
            f'<script src="site.js"></script></body></html>\n')


def render_site(boards: dict[str, Any]) -> dict[str, str]:
    from reid_bench.leaderboard import LABELS

    esc = html.escape
    items = []
    for name in sorted(boards):
        board = boards[name]
        tops = []
        for version, fold in board.sections():
            top = next((r for r in board.rows[(version, fold)] if r.rank == 1), None)
            if top is not None:
                cell = top.cells[board.main_score]
                tops.append(f"{esc(fold)}: {esc(top.model)} ({cell.fmt(True)})")
        items.append(f'<li><a href="{esc(name)}.html">{esc(name)}</a> <span class="meta">{esc(board.mode)}, '
                     f'{esc(LABELS.get(board.main_score, board.main_score))}; first: {"; ".join(tops) or "—"}</span></li>')
    index = _page("reid-bench leaderboards",
                  "<h1>reid-bench leaderboards</h1>\n<p>One page per protocol: sort, filter, compare CMC curves "
                  "and seeds. Built from <code>results/</code> by <code>reid-bench leaderboard</code>; the same "
                  "tables are in the Markdown files beside this one.</p>\n<ul class=\"boards\">" + "".join(items)
                  + "</ul>")
    files = {"index.html": index, **{name: _static(name) for name in ("site.js", "site.css")}}
    for name, board in sorted(boards.items()):
        body = (f'<p><a href="index.html">all boards</a></p><h1>{esc(name)}</h1>\n<div id="app">'
                '<p class="noscript">This page draws its tables with JavaScript; the same board is in '
                f'<a href="{esc(name)}.md">{esc(name)}.md</a>.</p></div>')
        files[f"{name}.html"] = _page(f"{name} - reid-bench", body, board_page_data(board))
    return files
