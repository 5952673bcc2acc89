"""Leaderboards generated from MLflow: Markdown per protocol, leaderboard.json and index.html.

An entry is (protocol, model, resolved-config fingerprint); its row comes from the latest
invocation that finished at least one trial. Within an invocation each (fold, seed) counts once
(the latest finished child run). A fold with missing seeds is marked incomplete and not averaged.
The same runs always produce byte-identical files: nothing depends on the time of generation.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import statistics
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from reid_bench.tracking import EXPERIMENT, KIND_TAG, connect

PERCENT_METRICS = {"rank1", "rank5", "rank10", "nAUC", "mAP", "mINP", "roc_auc_micro", "sequence_accuracy"}
LABELS = {"rank1": "Rank-1", "rank5": "Rank-5", "rank10": "Rank-10", "nAUC": "nAUC", "mAP": "mAP", "mINP": "mINP",
          "sequence_accuracy": "Seq-acc", "roc_auc_micro": "ROC-AUC-micro"}


@dataclass
class Cell:
    mean: float | None
    std: float | None
    n: int

    def fmt(self, percent: bool) -> str:
        if self.mean is None:
            return "—"
        scale = 100.0 if percent else 1.0
        return f"{scale * self.mean:.1f} ± {scale * (self.std or 0.0):.1f}"

    def as_json(self, percent: bool) -> dict[str, Any]:
        scale = 100.0 if percent else 1.0
        return {"mean": None if self.mean is None else round(scale * self.mean, 4),
                "std": None if self.std is None else round(scale * self.std, 4), "n": self.n}


@dataclass
class Row:
    model: str
    config: str
    fingerprint: str
    fold: str
    expected_seeds: int
    seeds: list[int]
    cells: dict[str, Cell]
    params: int | None
    paper: float | None
    run_id: str
    commit: str
    date: str
    tuned: str = ""
    rank: int | None = None

    @property
    def complete(self) -> bool:
        return len(self.seeds) == self.expected_seeds and self.expected_seeds > 0


@dataclass
class ProtocolBoard:
    name: str
    version: str
    mode: str
    main_score: str
    higher_is_better: bool
    folds: list[str]
    rows: dict[str, list[Row]] = field(default_factory=dict)
    reference_source: str = ""

    @property
    def columns(self) -> list[str]:
        if self.mode == "closed-set":
            return ["rank1", "rank5", "nAUC"]
        return ["rank1", "rank5", "mAP"]


def _protocol_meta(name: str, tags: dict[str, str]) -> dict[str, Any]:
    """From the installed plugin when possible, else from what the run recorded."""
    from reid_bench.registry import PluginError, get_registry

    try:
        cls = get_registry().protocol(name)
        return {"version": str(cls.version), "mode": cls.mode, "main_score": cls.main_score,
                "higher_is_better": cls.higher_is_better, "folds": list(cls.folds),
                "references": cls.references, "reference_source": cls.reference_source}
    except PluginError:
        return {"version": tags.get("reid_bench.protocol_version", "?"), "mode": tags.get("reid_bench.mode", "retrieval"),
                "main_score": tags.get("reid_bench.main_score", "rank1"), "higher_is_better": True,
                "folds": json.loads(tags.get("reid_bench.folds", "[]")), "references": {}, "reference_source": ""}


def _config_label(tags: dict[str, str]) -> str:
    overrides = json.loads(tags.get("reid_bench.overrides", "{}") or "{}")
    if not overrides:
        return "default"
    return ", ".join(f"{k.removeprefix('model.')}={v}" for k, v in sorted(overrides.items()))


def collect(client, experiment_id: str, protocols: list[str] | None = None) -> dict[str, ProtocolBoard]:
    parents = client.search_runs([experiment_id], filter_string=f"tags.`{KIND_TAG}` = 'invocation'", max_results=50000)
    children = client.search_runs([experiment_id], filter_string=f"tags.`{KIND_TAG}` = 'trial'", max_results=50000)
    by_parent: dict[str, list[Any]] = {}
    for child in children:
        by_parent.setdefault(child.data.tags.get("mlflow.parentRunId", ""), []).append(child)

    # latest invocation with at least one finished trial, per entry
    chosen: dict[tuple[str, str, str], Any] = {}
    for parent in parents:
        tags = parent.data.tags
        protocol = tags.get("reid_bench.protocol")
        if not protocol or (protocols and protocol not in protocols):
            continue
        finished = [c for c in by_parent.get(parent.info.run_id, []) if c.info.status == "FINISHED"]
        if not finished:
            continue
        key = (protocol, tags.get("reid_bench.model", "?"), tags.get("reid_bench.config_fingerprint", ""))
        current = chosen.get(key)
        if current is None or (parent.info.start_time, parent.info.run_id) > (current.info.start_time, current.info.run_id):
            chosen[key] = parent

    boards: dict[str, ProtocolBoard] = {}
    for (protocol, model, fp), parent in sorted(chosen.items()):
        tags = parent.data.tags
        meta = _protocol_meta(protocol, tags)
        board = boards.get(protocol)
        if board is None:
            board = boards[protocol] = ProtocolBoard(protocol, meta["version"], meta["mode"], meta["main_score"],
                                                     meta["higher_is_better"], list(meta["folds"]),
                                                     reference_source=meta["reference_source"])
        expected = json.loads(tags.get("reid_bench.expected_trials", "[]"))
        folds_expected: dict[str, int] = {}
        for key in expected:
            fold = key.rsplit("/seed", 1)[0]
            folds_expected[fold] = folds_expected.get(fold, 0) + 1
        latest: dict[tuple[str, int], Any] = {}
        for child in by_parent.get(parent.info.run_id, []):
            if child.info.status != "FINISHED":
                continue
            ckey = (child.data.tags.get("reid_bench.fold", ""), int(child.data.tags.get("reid_bench.seed", "-1")))
            prev = latest.get(ckey)
            if prev is None or (child.info.start_time, child.info.run_id) > (prev.info.start_time, prev.info.run_id):
                latest[ckey] = child
        date = datetime.fromtimestamp(parent.info.start_time / 1000, tz=timezone.utc).strftime("%Y-%m-%d")
        for fold, n_expected in folds_expected.items():
            runs = [latest[k] for k in sorted(latest) if k[0] == fold]
            complete = len(runs) == n_expected
            cells = {}
            for metric in set(board.columns) | {board.main_score}:
                values = [r.data.metrics[metric] for r in runs if metric in r.data.metrics]
                if complete and values and len(values) == len(runs):
                    cells[metric] = Cell(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0, len(values))
                else:
                    cells[metric] = Cell(None, None, len(values))
            params = next((int(r.data.metrics["num_parameters"]) for r in runs if "num_parameters" in r.data.metrics), None)
            paper = meta["references"].get(model, {}).get(fold, {}).get(board.main_score)
            row = Row(model=model, config=_config_label(tags), fingerprint=fp, fold=fold, expected_seeds=n_expected,
                      seeds=sorted(k[1] for k in latest if k[0] == fold), cells=cells, params=params, paper=paper,
                      run_id=parent.info.run_id, commit=tags.get("reid_bench.git_commit", "unknown"), date=date,
                      tuned=tags.get("reid_bench.tuned", ""))
            board.rows.setdefault(fold, []).append(row)
            if fold not in board.folds:
                board.folds.append(fold)

    for board in boards.values():
        for fold, rows in board.rows.items():
            sign = -1.0 if board.higher_is_better else 1.0
            rows.sort(key=lambda r: (not r.complete, sign * (r.cells[board.main_score].mean or 0.0), r.model, r.fingerprint))
            rank = 0
            for row in rows:
                if row.complete:
                    rank += 1
                    row.rank = rank
    return boards


def _md_table(board: ProtocolBoard, rows: list[Row]) -> list[str]:
    cols = board.columns
    header = ["#", "Model", "Config"] + [LABELS[c] for c in cols] + ["n", "Params", f"Paper {LABELS[board.main_score]}", "Run", "Commit", "Date"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        n = f"{len(r.seeds)}/{r.expected_seeds}" + ("" if r.complete else " incomplete")
        cells = [str(r.rank) if r.rank else "—", r.model + (f" (tuned: {r.tuned})" if r.tuned else ""), r.config.replace("|", "\\|")]
        cells += [r.cells[c].fmt(c in PERCENT_METRICS) for c in cols]
        cells += [n, _fmt_params(r.params), "—" if r.paper is None else f"{r.paper:.1f}", r.run_id[:8], r.commit, r.date]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _fmt_params(n: int | None) -> str:
    if n is None:
        return "—"
    if n == 0:
        return "0"
    if n >= 1e6:
        return f"{n / 1e6:.2f}M"
    if n >= 1e3:
        return f"{n / 1e3:.1f}K"
    return str(n)


def render_markdown(board: ProtocolBoard) -> str:
    out = [f"# {board.name} (protocol v{board.version})", "",
           f"Mode: {board.mode}. Main score: {LABELS.get(board.main_score, board.main_score)} "
           f"({'higher' if board.higher_is_better else 'lower'} is better). Values are percent, mean ± std over seeds; "
           "n = finished seeds / expected. Rows with missing seeds are marked incomplete and not averaged.", ""]
    if board.reference_source:
        out += [f"Paper values: {board.reference_source}", ""]
    for fold in board.folds:
        if fold not in board.rows:
            continue
        out += [f"## Fold {fold}", ""] + _md_table(board, board.rows[fold]) + [""]
    return "\n".join(out)


def board_json(board: ProtocolBoard) -> dict[str, Any]:
    return {
        "version": board.version, "mode": board.mode, "main_score": board.main_score,
        "higher_is_better": board.higher_is_better,
        "folds": {
            fold: [
                {"rank": r.rank, "model": r.model, "config": r.config, "config_fingerprint": r.fingerprint,
                 "complete": r.complete, "seeds": r.seeds, "expected_seeds": r.expected_seeds,
                 "metrics": {m: c.as_json(m in PERCENT_METRICS) for m, c in sorted(r.cells.items())},
                 "num_parameters": r.params, "paper": r.paper, "run_id": r.run_id, "commit": r.commit,
                 "date": r.date, "tuned": r.tuned or None}
                for r in board.rows[fold]
            ]
            for fold in board.folds if fold in board.rows
        },
    }


def render_html(boards: dict[str, ProtocolBoard]) -> str:
    esc = html.escape
    parts = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\"><title>reid-bench leaderboards</title>",
             "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:80em}table{border-collapse:collapse;margin-bottom:1.5em}"
             "td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}td:nth-child(2),td:nth-child(3),th{text-align:left}"
             ".incomplete{color:#999}</style></head><body>", "<h1>reid-bench leaderboards</h1>"]
    parts.append("<ul>" + "".join(f"<li><a href=\"#{esc(n)}\">{esc(n)}</a></li>" for n in sorted(boards)) + "</ul>")
    for name in sorted(boards):
        board = boards[name]
        parts.append(f"<h2 id=\"{esc(name)}\">{esc(name)} <small>v{esc(board.version)}, {esc(board.mode)}, main score "
                     f"{esc(LABELS.get(board.main_score, board.main_score))}</small></h2>")
        for fold in board.folds:
            if fold not in board.rows:
                continue
            cols = board.columns
            parts.append(f"<h3>Fold {esc(fold)}</h3><table><tr><th>#</th><th>Model</th><th>Config</th>"
                         + "".join(f"<th>{esc(LABELS[c])}</th>" for c in cols)
                         + "<th>n</th><th>Params</th><th>Paper</th><th>Run</th><th>Commit</th><th>Date</th></tr>")
            for r in board.rows[fold]:
                cls = "" if r.complete else " class=\"incomplete\""
                cells = [str(r.rank) if r.rank else "—", r.model + (f" (tuned: {r.tuned})" if r.tuned else ""), r.config]
                cells += [r.cells[c].fmt(c in PERCENT_METRICS) for c in cols]
                cells += [f"{len(r.seeds)}/{r.expected_seeds}" + ("" if r.complete else " incomplete"), _fmt_params(r.params),
                          "—" if r.paper is None else f"{r.paper:.1f}", r.run_id[:8], r.commit, r.date]
                parts.append(f"<tr{cls}>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>")
            parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def build_leaderboards(tracking_uri: str, out_dir: str | Path, protocols: list[str] | None = None) -> dict[str, Any]:
    """Write the leaderboard files; all or nothing (files are staged, then moved into place)."""
    client, experiment_id = connect(tracking_uri, EXPERIMENT, create=False)
    if experiment_id is None:
        raise LookupError(f"no reid-bench runs at {tracking_uri!r} (experiment {EXPERIMENT!r} does not exist); run `reid-bench run` first")
    all_boards = collect(client, experiment_id)
    if protocols:
        unknown = [p for p in protocols if p not in all_boards]
        if unknown:
            raise LookupError(f"no finished runs for protocol {unknown[0]!r} at {tracking_uri!r}; protocols with runs: {', '.join(sorted(all_boards)) or 'none'}")
    selected = {k: v for k, v in all_boards.items() if not protocols or k in protocols}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {f"{name}.md": render_markdown(board) + "\n" for name, board in sorted(selected.items())}
    payload = {"protocols": {name: board_json(board) for name, board in sorted(all_boards.items())}}
    files["leaderboard.json"] = json.dumps(payload, indent=2, sort_keys=True) + "\n"
    files["index.html"] = render_html(all_boards)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=out))
    try:
        for name, text in files.items():
            (staging / name).write_text(text)
        for name in files:
            os.replace(staging / name, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {"written": sorted(files), "out": str(out.resolve()), "protocols": sorted(selected)}
