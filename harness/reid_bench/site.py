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


def _static(name: str) -> str:
    """The page script and style sheet, shipped in ``reid_bench/site_static`` and copied beside the pages."""
    from importlib.resources import files

    return files("reid_bench").joinpath("site_static", name).read_text(encoding="utf-8")


#: Characters that could end a script block or change its parsing state ("</script", "<!--"), and
#: the line separators some parsers treat as line ends, all written as JSON \u escapes.
_SCRIPT_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
                              "\u2029": "\\u2029"})


def script_json(data: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">`` whatever its strings hold."""
    return json.dumps(data, sort_keys=True, separators=(",", ":")).translate(_SCRIPT_SAFE)


def _page(title: str, body: str, data: dict[str, Any] | None = None) -> str:
    payload = ""
    if data is not None:
        payload = f'<script id="board-data" type="application/json">{script_json(data)}</script>\n'
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<link rel="stylesheet" href="site.css"></head><body>\n{body}\n{payload}'
            f'<script src="site.js"></script></body></html>\n')


def _published_html(data: dict[str, Any]) -> str:
    """The published numbers of the protocol, drawn without JavaScript (a board may have no
    measured row): the sources, then per fold one row per method and source with its kind."""
    esc = html.escape
    tables = data.get("published") or {}
    if not tables:
        return ""
    metrics, labels = data["published_metrics"], data["published_labels"]
    parts = ['<section class="published"><h2>Published</h2>']
    if not data["sections"]:
        parts.append("<p>No measured row yet: this protocol needs its dataset, which reid-bench does not ship.</p>")
    parts.append(f'<p class="meta">{esc(data.get("reference_source", ""))}</p><p>{esc(data.get("produce", ""))}</p>')
    sources = data.get("published_sources") or []
    if sources:
        items = "".join(
            f'<li value="{int(s["number"])}" data-source="{esc(s["key"])}"><b>{esc(s["name"])}</b>: {esc(s["citation"])}.'
            + (f" Holds: {esc(s['holds'])}." if s.get("holds") else "") + (f" {esc(s['note'])}" if s.get("note") else "")
            + "</li>" for s in sources)
        parts.append(f'<h3>Sources</h3><ol class="sources">{items}</ol>')
    if data.get("published_kinds"):
        parts.append(f'<p class="note">Kinds: {esc(data["published_kinds"])}.</p>')
    disagreements = data.get("published_disagreements") or []
    if disagreements:
        parts.append(f'<p class="warning">The sources disagree on {len(disagreements)} '
                     f'number{"s" if len(disagreements) != 1 else ""}: both are kept (listed under the folds).</p>')
    elif len(sources) > 1:
        parts.append('<p class="note">Where the sources give a number for the same method, they agree.</p>')
    for fold, rows in tables.items():
        head = "".join(f"<th>{esc(labels.get(m, m))}</th>" for m in metrics)
        body = "".join(
            f'<tr data-source="{esc(r["source"])}"><td>' + esc(r["model"]) + "</td>" + "".join(
                f"<td>{r['metrics'][m]:.1f}</td>" if m in r["metrics"] else "<td>—</td>" for m in metrics)
            + f'<td class="kind" title="{esc(r["kind_text"])}">{esc(r["marks"])} {esc(r["kind_text"])}</td>'
            + f'<td class="source">{esc(r["source_cell"])}</td></tr>'
            for r in rows)
        parts.append(f'<h3>Fold {esc(fold)}</h3><table class="published-table"><thead><tr><th>Model</th>{head}'
                     f"<th>Kind</th><th>Source</th></tr></thead><tbody>{body}</tbody></table>")
        notes = [d["text"] for d in disagreements if d["fold"] == fold]
        if notes:
            parts.append('<ul class="disagreements">' + "".join(f'<li class="warning">{esc(t)}</li>' for t in notes)
                         + "</ul>")
    notes = [f'<li>{esc(", ".join(n["models"]))} [{esc(str(n["number"]))}]: {esc(n["note"])}</li>'
             for n in data.get("published_notes") or []]
    if notes:
        parts.append('<h3>Notes on the rows</h3><ul class="published-notes">' + "".join(notes) + "</ul>")
    return "".join(parts) + "</section>"


def render_site(pages: dict[str, dict[str, Any]]) -> dict[str, str]:
    """The files of the site from each protocol's page data (``reid_bench.leaderboard.site_data``)."""
    esc = html.escape
    items = []
    for name in sorted(pages):
        data = pages[name]
        label = data["labels"].get(data["main_score"], data["main_score"])
        tops = []
        for section in data["sections"]:
            # the first of the models' own configurations, not the best of a model's ablations
            ranked = [r for r in section["rows"] if r["rank"] is not None and r.get("default")]
            top = min(ranked, key=lambda r: r["rank"], default=None)
            cell = top and top["metrics"].get(data["main_score"])
            if cell and cell["mean"] is not None:
                spread = f" ± {cell['std']:.1f}" if len(cell["seeds"]) > 1 else ""
                tops.append(f"{esc(section['fold'])}: {esc(top['model'])} [{esc(top['config'])}] "
                            f"({cell['mean']:.1f}{spread})")
        methods = len({r["model"] for rows in data.get("published", {}).values() for r in rows})
        paper = f"; published: {methods} method{'s' if methods != 1 else ''}" if methods else ""
        items.append(f'<li><a href="{esc(name)}.html">{esc(name)}</a> <span class="meta">{esc(data["mode"])}, '
                     f'{esc(label)}; first: {"; ".join(tops) or "no measured row yet"}{paper}</span></li>')
    index = _page("reid-bench leaderboards",
                  "<h1>reid-bench leaderboards</h1>\n<p>One page per protocol: sort, filter, compare CMC curves "
                  "and seeds. Built from <code>results/</code> by <code>reid-bench leaderboard</code>; the same "
                  "tables are in the Markdown files beside this one.</p>\n<ul class=\"boards\">" + "".join(items)
                  + "</ul>")
    files = {"index.html": index, **{name: _static(name) for name in ("site.js", "site.css")}}
    for name, data in sorted(pages.items()):
        body = (f'<p><a href="index.html">all boards</a></p><h1>{esc(name)}</h1>\n<div id="app">'
                '<p class="noscript">This page draws its tables with JavaScript; the same board is in '
                f'<a href="{esc(name)}.md">{esc(name)}.md</a>.</p></div>' + _published_html(data))
        files[f"{name}.html"] = _page(f"{name} - reid-bench", body, data)
    return files
