"""Leaderboards built from result documents (``reid_bench.results``): Markdown per protocol,
``leaderboard.json`` and ``index.html``.

A row is (protocol version, model, resolved-config fingerprint): every finished (fold, seed) of
that configuration, whichever invocation ran it, counted once. A fold whose expected seeds have
not all finished is marked incomplete and not averaged; a row with one seed shows no spread. A
paper's number is shown only on rows whose configuration is the paper's (the model's defaults
for the protocol, not tuned); other rows say that the configuration differs. The same documents
always produce byte-identical files: nothing depends on the time of generation.
"""

from __future__ import annotations

import json
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from reid_bench.bootstrap import query_matrix
from reid_bench.config import readable_value
from reid_bench.controls import control_kind, controls_caption
from reid_bench.published import (KINDS, Published, PublishedRow, PublishedSource, board_published, disagreements,
                                  fold_rows, kind_text, marks_legend, paper_entry, published_of)
from reid_bench.results import (Key, ResultsError, check_document, export_store, load_results, render_results, result_path,
                                write_files)
from reid_bench.modes import METRIC_NAMES, board_columns, is_percent, label
from reid_bench.site import render_site

CONFIG_DIFFERS = "config differs"


@dataclass
class Cell:
    mean: float | None
    std: float | None
    n: int

    def fmt(self, percent: bool) -> str:
        if self.mean is None:
            return "—"
        scale = 100.0 if percent else 1.0
        if self.n == 1:
            return f"{scale * self.mean:.1f}"
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
    version: str
    fold: str
    expected_seeds: list[int]
    seeds: list[int]
    cells: dict[str, Cell]
    per_seed: dict[int, dict[str, float]]
    params: int | None
    paper: float | None
    paper_status: str | None
    run_id: str
    commit: str
    date: str
    tuned: str = ""
    rank: int | None = None
    control: str | None = None  # chance, probe on raw windows, untrained encoder
    #: The model's own configuration on the protocol (no --set typed, not tuned, not evaluated
    #: from a checkpoint): the row the index names as the protocol's first.
    default: bool = False
    #: The main score at each trial's best test epoch (``--report-best-test-epoch``), mean over
    #: the trials that recorded it: test-selected, shown apart, never ranked.
    test_selected: Cell | None = None
    queries: Any = None  # [seeds, queries] of the main score's per-query values (reid_bench.bootstrap)
    cmc: dict[int, list[float]] = field(default_factory=dict)  # per seed, for the site's CMC plots
    versions: dict[str, str] = field(default_factory=dict)  # reid-bench, torch, Ray, MLflow of the latest trial
    links: dict[int, str] = field(default_factory=dict)  # per seed: the trial's MLflow page, for a server store
    bootstrap: dict[str, Any] | None = None  # vs the top row and vs the paper, 95% intervals
    protocol_seeds: int | None = None  # the protocol's own seed count (None: the plugin is not installed)
    #: The kind of the paper value (``reid_bench.published.KINDS``) and the key of its source.
    paper_kind: tuple[str, ...] = ()
    paper_source: str | None = None

    @property
    def paper_marks(self) -> str:
        return "".join(KINDS[k][0] for k in self.paper_kind if k in KINDS) if self.paper is not None else ""

    @property
    def complete(self) -> bool:
        return bool(self.expected_seeds) and set(self.expected_seeds) <= set(self.seeds)

    @property
    def fewer_seeds(self) -> bool:
        """Run with fewer seeds than the protocol's: its rank and its ties rest on less."""
        return self.protocol_seeds is not None and len(self.expected_seeds) < self.protocol_seeds

    @property
    def seeds_text(self) -> str:
        """``3/3``; ``2/3 incomplete``; ``1/1, protocol 3`` for a row run with fewer seeds."""
        text = f"{len(self.seeds)}/{len(self.expected_seeds)}" + ("" if self.complete else " incomplete")
        return text + (f", protocol {self.protocol_seeds}" if self.fewer_seeds else "")


@dataclass
class ProtocolBoard:
    name: str
    mode: str
    main_score: str
    higher_is_better: bool
    folds: list[str]
    rows: dict[tuple[str, str], list[Row]] = field(default_factory=dict)  # (version, fold) -> rows
    reference_source: str = ""
    reference_score: str = ""  # the metric the papers report for the main score (OG-Net: map_trapz)
    #: The papers' numbers for this protocol, {model: {fold: {metric: percent}}}: shown as the
    #: published table, with or without measured rows.
    references: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    installed_version: str = ""  # the protocol's version, for a board with no measured row yet
    #: Where each published number comes from and what kind it is (``reid_bench.published``).
    published_sources: list[PublishedSource] = field(default_factory=list)
    published_entries: list[Published] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        return board_columns(self.mode)

    @property
    def versions(self) -> list[str]:
        return sorted({v for v, _ in self.rows}, key=_version_order)

    def sections(self) -> list[tuple[str, str]]:
        order = {f: i for i, f in enumerate(self.folds)}
        return sorted(self.rows, key=lambda vf: (_version_order(vf[0]), order.get(vf[1], len(order)), vf[1]))


def _version_order(version: str) -> tuple:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in str(version).split("."))


def _protocol_meta(name: str, doc: dict[str, Any]) -> dict[str, Any]:
    """From the installed plugin when possible, else from what the result recorded."""
    from reid_bench.registry import PluginError, get_registry

    try:
        registry = get_registry()
        cls = registry.protocol(name)
        sources, entries, papers = board_published(cls, registry.published_methods())
        return {"higher_is_better": cls.higher_is_better, "folds": list(cls.folds), "references": papers,
                "seeds": len(cls.seeds),
                "reference_source": cls.reference_source,
                "reference_score": getattr(cls, "reference_score", None) or cls.main_score,
                "published_sources": list(sources), "published_entries": list(entries)}
    except PluginError:
        folds = sorted({k.rsplit("/seed", 1)[0] for k in doc["expected_trials"]})
        return {"higher_is_better": True, "folds": folds, "references": {}, "reference_source": "",
                "reference_score": doc["main_score"], "seeds": None, "published_sources": [], "published_entries": []}


def config_label(values: dict[str, str]) -> str:
    if not values:
        return "default"
    return ", ".join(f"{k.removeprefix('model.')}={readable_value(str(v))}" for k, v in sorted(values.items()))


def row_label(doc: dict[str, Any]) -> str:
    """A row's Config: every setting that differs from the model's release on the protocol (a cut
    budget, a recipe, a switch), or "release" when none does; a row scored from a checkpoint says
    which one; results written before the release difference was recorded show what was typed."""
    if doc.get("evaluated_from"):
        return config_label(doc.get("config_label", {}))
    if "release_diff" in doc:
        return config_label(doc["release_diff"]) if doc["release_diff"] else "release"
    return config_label(doc.get("config_label", doc["config_diff"]))


def _paper(meta: dict[str, Any], doc: dict[str, Any], fold: str, metric: str) -> tuple[float | None, str | None]:
    """The published value of the row's model (shown only when the row runs the paper's
    configuration) and the reproduction status: "paper config", or which settings differ."""
    evaluated = doc.get("evaluated_from")
    if isinstance(evaluated, dict):  # scored from a saved model, not trained by this row's run
        return None, (f"evaluated from checkpoint {str(evaluated.get('sha256', ''))[:12]} "
                      f"(trained on {evaluated.get('trained_on', '?')})")
    value = meta["references"].get(doc["model"], {}).get(fold, {}).get(metric)
    if value is None:
        return None, None
    if doc.get("tuned"):
        return None, f"{CONFIG_DIFFERS}: tuned"
    differs = doc.get("release_diff", doc["config_diff"])
    if differs:
        return None, f"{CONFIG_DIFFERS}: " + ", ".join(k.removeprefix("model.") for k in sorted(differs))
    return float(value), "paper config"


def collect(documents: dict[Key, dict[str, Any]]) -> dict[str, ProtocolBoard]:
    boards: dict[str, ProtocolBoard] = {}
    for (protocol, version, model, fingerprint), doc in sorted(documents.items()):
        meta = _protocol_meta(protocol, doc)
        board = boards.get(protocol)
        if board is None:
            board = boards[protocol] = ProtocolBoard(protocol, doc["mode"], doc["main_score"], meta["higher_is_better"],
                                                     list(meta["folds"]), reference_source=meta["reference_source"],
                                                     reference_score=meta["reference_score"],
                                                     references=meta["references"],
                                                     published_sources=meta["published_sources"],
                                                     published_entries=meta["published_entries"])
        expected: dict[str, list[int]] = {}
        for key in doc["expected_trials"]:
            fold, seed = key.rsplit("/seed", 1)
            expected.setdefault(fold, []).append(int(seed))
        for trial in doc["trials"]:
            expected.setdefault(trial["fold"], [])
        for fold, expected_seeds in expected.items():
            trials = sorted((t for t in doc["trials"] if t["fold"] == fold), key=lambda t: t["seed"])
            if not trials:
                continue
            row = _row(board, meta, doc, fold, sorted(set(expected_seeds)), trials, version)
            board.rows.setdefault((version, fold), []).append(row)
            if fold not in board.folds:
                board.folds.append(fold)
    for board in boards.values():
        sign = -1.0 if board.higher_is_better else 1.0
        for rows in board.rows.values():
            rows.sort(key=lambda r: (not r.complete, sign * (r.cells[board.main_score].mean or 0.0), r.model,
                                     r.fingerprint))
            rank = 0
            for row in rows:
                if row.complete and row.control is None:
                    rank += 1
                    row.rank = rank
        for (version, fold), rows in board.rows.items():
            _bootstrap(board, f"{board.name}/v{version}/{fold}", rows)
    return boards


def reference_boards(boards: dict[str, ProtocolBoard]) -> dict[str, ProtocolBoard]:
    """Every installed protocol that carries papers' numbers gets a board, measured rows or not:
    the published table is the comparison a user's rows are read against."""
    from reid_bench.registry import PluginError, get_registry

    registry = get_registry()
    out = dict(boards)
    for name in registry.names("protocols"):
        if name in out:
            continue
        try:
            cls = registry.protocol(name)
        except PluginError:
            continue
        if cls.references:
            sources, entries, papers = board_published(cls, registry.published_methods())
            out[name] = ProtocolBoard(name, cls.mode, cls.main_score, cls.higher_is_better, list(cls.folds),
                                      reference_source=cls.reference_source,
                                      reference_score=getattr(cls, "reference_score", None) or cls.main_score,
                                      references=papers, installed_version=str(cls.version),
                                      published_sources=list(sources), published_entries=list(entries))
    return out


def _board_published(board: ProtocolBoard) -> tuple[list[PublishedSource], list[Published]]:
    """The board's sources and entries; a board given only ``references`` gets them as one
    source (its ``reference_source``) whose kind is not stated."""
    if board.published_entries:
        return board.published_sources, board.published_entries
    sources, entries = published_of(SimpleNamespace(references=board.references,
                                                    reference_source=board.reference_source))
    return list(sources), list(entries)


def _published_entries(board: ProtocolBoard) -> list[Published]:
    return _board_published(board)[1]


def _published_sources(board: ProtocolBoard) -> list[PublishedSource]:
    return _board_published(board)[0]


def published(board: ProtocolBoard) -> dict[str, list[PublishedRow]]:
    """Per fold, the published rows (one per model and source, a source that gives the same
    numbers named on the first's row), best first by the published main score; rows without it
    (a source that gives Rank-1 only) after them, best first by their Rank-1."""
    out: dict[str, list[PublishedRow]] = {}
    sign = -1.0 if board.higher_is_better else 1.0
    entries = _published_entries(board)
    order = {e.source: i for i, e in enumerate(entries)}

    def key(row: PublishedRow) -> tuple:
        score = row.values.get(board.reference_score)
        if score is not None:
            return (0, sign * score, row.model, order.get(row.source, 0))
        return (1, -row.values.get("rank1", float("-inf")), row.model, order.get(row.source, 0))

    for fold in board.folds:
        rows = sorted(fold_rows(entries, fold), key=key)
        if rows:
            out[fold] = rows
    return out


def published_metrics(board: ProtocolBoard) -> list[str]:
    order = ["mAP", *(m for m in METRIC_NAMES if m != "mAP")]  # mAP first, as the surveys' tables have it
    seen = {m for rows in published(board).values() for row in rows for m in row.values}
    return [m for m in order if m in seen] + sorted(seen - set(order))


def source_numbers(board: ProtocolBoard) -> dict[str, int]:
    """Each source's footnote number on the board: [1], [2], ... in the protocol's order."""
    return {s.key: i + 1 for i, s in enumerate(_published_sources(board))}


def published_notes(board: ProtocolBoard) -> list[tuple[list[str], str, str]]:
    """The rows' notes, once each: (models, source, note), the models that share a note together."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for rows in published(board).values():
        for row in rows:
            if row.note:
                models = grouped.setdefault((row.source, row.note), [])
                if row.model not in models:
                    models.append(row.model)
    return [(models, source, note) for (source, note), models in grouped.items()]


def board_disagreements(board: ProtocolBoard) -> list[dict[str, Any]]:
    """Where two sources give different numbers for the same model, fold and metric."""
    return disagreements(_published_entries(board))


def produce_line(board: ProtocolBoard) -> str:
    """How a user with the data adds measured rows to this board."""
    return (f"`make field-protocol PROTOCOL={board.name} DATA=/path/to/data` runs every installed method of this "
            f"table on it at its release configuration (`reid-bench data info` says where each dataset goes); "
            f"then `reid-bench leaderboard` adds the rows.")


def _bootstrap(board: ProtocolBoard, section: str, rows: list[Row]) -> None:
    """Each complete row's main-score difference to the top row, and to its paper value, with a
    paired bootstrap interval over test queries and seeds (``reid_bench.bootstrap``)."""
    from reid_bench.bootstrap import compare

    top = next((i for i, r in enumerate(rows) if r.rank == 1), -1)
    matrices = [r.queries if r.complete else None for r in rows]
    papers = [r.paper if board.reference_score == board.main_score else None for r in rows]
    for row, result in zip(rows, compare(section, matrices, top, papers)):
        row.bootstrap = result


def _row(board: ProtocolBoard, meta: dict[str, Any], doc: dict[str, Any], fold: str, expected: list[int],
         trials: list[dict[str, Any]], version: str) -> Row:
    seeds = [t["seed"] for t in trials]
    complete = bool(expected) and set(expected) <= set(seeds)
    cells = {}
    for metric in dict.fromkeys([*board.columns, board.main_score, board.reference_score, *METRIC_NAMES]):
        values = [t["metrics"][metric] for t in trials if metric in t["metrics"]]
        if not values:
            continue
        if complete and len(values) == len(trials):
            cells[metric] = Cell(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0,
                                 len(values))
        else:
            cells[metric] = Cell(None, None, len(values))
    for metric in board.columns + [board.main_score, board.reference_score]:
        cells.setdefault(metric, Cell(None, None, 0))
    latest = max(trials, key=lambda t: (t["end_time"], t["run_id"]))
    params = next((t["num_parameters"] for t in trials if t.get("num_parameters") is not None), None)
    paper, status = _paper(meta, doc, fold, board.reference_score)
    entry = paper_entry(meta.get("published_entries") or [], doc["model"], fold) if paper is not None else None
    return Row(model=doc["model"], config=row_label(doc), fingerprint=doc["config_fingerprint"],
               version=version, fold=fold, expected_seeds=expected, seeds=seeds, cells=cells,
               per_seed={t["seed"]: dict(t["metrics"]) for t in trials}, params=params, paper=paper,
               paper_status=status, run_id=latest["invocation"], commit=latest.get("commit", "unknown"),
               date=latest.get("date", ""), tuned=doc.get("tuned") or "",
               control=control_kind(doc["model"], doc["config_diff"], board.mode),
               queries=query_matrix(trials, board.main_score),
               cmc={t["seed"]: [round(float(v), 4) for v in t.get("cmc", [])] for t in trials},
               versions=dict(latest.get("versions", {})),
               links={t["seed"]: t["mlflow_url"] for t in trials
                      if str(t.get("mlflow_url", "")).lower().startswith(("http://", "https://"))},
               default=not (doc.get("config_label") or doc.get("tuned") or doc.get("evaluated_from")),
               test_selected=_test_selected(trials, board.main_score), protocol_seeds=meta["seeds"],
               paper_kind=tuple(entry.kind) if entry else (), paper_source=entry.source if entry else None)


def _test_selected(trials: list[dict[str, Any]], metric: str) -> Cell | None:
    values = [t["test_selected"][metric] for t in trials if metric in (t.get("test_selected") or {})]
    if not values:
        return None
    return Cell(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0, len(values))


# ------------------------------------------------------------------------------------- rendering


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


def _difference(board: ProtocolBoard, r: Row) -> float | None:
    """Measured minus published, in points, on the metric the paper reports."""
    cell = r.cells.get(board.reference_score)
    if r.paper is None or cell is None or cell.mean is None:
        return None
    return 100.0 * cell.mean - r.paper if is_percent(board.reference_score) else cell.mean - r.paper


def _cells(board: ProtocolBoard, r: Row) -> list[str]:
    model = r.model + (f" (tuned: {r.tuned})" if r.tuned else "") + (f" ({r.control})" if r.control else "")
    cells = [r.seeds_text, str(r.rank) if r.rank else "—", model, r.config]
    cells += [r.cells[c].fmt(is_percent(c)) for c in board.columns]
    cells.append(_vs_top(r))
    diff = _difference(board, r)
    vs_paper = (r.bootstrap or {}).get("vs_paper")
    diff_text = "—" if diff is None else f"{diff:+.1f}"
    if diff is not None and vs_paper:
        diff_text += " [{:+.1f}, {:+.1f}]".format(*vs_paper["ci95"])
    paper = "—" if r.paper is None else f"{r.paper:.1f}" + (f" {r.paper_marks}" if r.paper_marks else "")
    cells += [_fmt_params(r.params), paper,
              diff_text, r.paper_status or "—", r.run_id[:8], r.commit, r.date]
    if _has_test_selected(board):
        selected = r.test_selected
        cells.append("—" if selected is None else f"{selected.fmt(is_percent(board.main_score))} "
                     f"(n = {selected.n})")
    return cells


def _vs_top(r: Row) -> str:
    """``-2.4 [-6.1, +1.3] tied`` (points, 95% interval); ``top`` on the first row."""
    if r.rank == 1:
        return "top"
    if not r.bootstrap:
        return "—"
    top = r.bootstrap["vs_top"]
    text = "{:+.1f} [{:+.1f}, {:+.1f}]".format(top["difference"], *top["ci95"])
    return text + (" tied" if top["tied"] else "")


def _header(board: ProtocolBoard) -> list[str]:
    main = label(board.main_score)
    return (["Seeds", "#", "Model", "Config"] + [label(c) for c in board.columns]
            + [f"Δ #1 {main} [95% CI]", "Params", f"Paper {label(board.reference_score)}", "Δ",
               "Reproduction", "Run", "Commit", "Date"]
            + ([f"{main} at the best test epoch (test-selected)"] if _has_test_selected(board) else []))


def _has_test_selected(board: ProtocolBoard) -> bool:
    return any(r.test_selected is not None for rows in board.rows.values() for r in rows)


def _section_title(board: ProtocolBoard, version: str, fold: str) -> str:
    return f"Fold {fold}" + (f" (protocol v{version})" if len(board.versions) > 1 else "")


def render_markdown(board: ProtocolBoard) -> str:
    versions = ", ".join(f"v{v}" for v in board.versions) or f"v{board.installed_version}"
    out = [f"# {board.name} (protocol {versions})", "",
           f"Mode: {board.mode}. Main score: {label(board.main_score)} "
           f"({'higher' if board.higher_is_better else 'lower'} is better). Values are percent, mean ± sample std "
           "over seeds (one seed: no spread). Seeds, first, as a rank rests on them: finished / expected, over "
           "every invocation of the configuration; \"protocol N\" marks a row run with fewer seeds than the "
           "protocol's N, whose rank and ties rest on less. Rows with missing seeds are marked incomplete and not "
           "averaged. The paper's value "
           "and the difference (measured minus published, points) stand only on rows with the paper's "
           f"configuration; on the others the Reproduction column says which settings differ. "
           f"Δ #1: the row's {label(board.main_score)} minus the first row's, in points, "
           "with a 95% paired-bootstrap interval over the test queries (shared by both rows) and each row's "
           "seeds; a row whose interval contains 0 is tied with the first (the same bootstrap gives the "
           "interval beside the paper difference).", ""]
    if board.reference_source:
        out += [f"Paper values: {board.reference_source}", ""]
    header = _header(board)

    def table(rows: list[Row]) -> list[str]:
        return (["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
                + ["| " + " | ".join(c.replace("|", "\\|") for c in _cells(board, r)) + " |" for r in rows])

    for version, fold in board.sections():
        rows = board.rows[(version, fold)]
        out += [f"## {_section_title(board, version, fold)}", ""] + table([r for r in rows if r.control is None]) + [""]
        legend = _paper_legend(board, [r for r in rows if r.control is None])
        if legend:
            out += [legend, ""]
        controls = [r for r in rows if r.control is not None]
        if controls:
            out += [controls_caption(board.mode), ""] + table(controls) + [""]
    if not board.rows:
        out += ["No measured row yet: this protocol needs its dataset, which reid-bench does not ship. "
                + produce_line(board), ""]
    out += _published_markdown(board)
    notes = _notes(board)
    if notes:
        out += ["## Notes", ""] + [f"- {model}: {note}" for model, note in notes] + [""]
    return "\n".join(out)


def _paper_legend(board: ProtocolBoard, rows: list[Row]) -> str:
    """The footnote under a table whose Paper column carries kind marks."""
    kinds = {k for r in rows if r.paper is not None for k in r.paper_kind}
    if not kinds:
        return ""
    numbers = source_numbers(board)
    sources = sorted({r.paper_source for r in rows if r.paper is not None and r.paper_source},
                     key=lambda k: numbers.get(k, 0))
    where = ", ".join(f"[{numbers[k]}]" for k in sources if k in numbers)
    return (f"Paper: the published value, from {where or 'the source below'} (see Published); its marks say what "
            f"kind of number it is: {marks_legend(kinds)}.")


def _source_cell(row: PublishedRow, numbers: dict[str, int]) -> str:
    text = f"[{numbers.get(row.source, '?')}]"
    if row.agreeing:
        text += "; the same in " + ", ".join(f"[{numbers.get(k, '?')}]" for k in row.agreeing)
    if row.differing:
        text += "; differs from " + ", ".join(f"[{numbers.get(k, '?')}]" for k in row.differing)
    return text


def _disagreement_text(d: dict[str, Any], numbers: dict[str, int]) -> str:
    said = ", ".join(f"{v:.1f} in [{numbers.get(k, '?')}]" for k, v in d["values"].items())
    return (f"{d['model']}, {label(d['metric'])}: the sources disagree: {said}. Both are kept, "
            "each on its own row; the Paper column uses the first.")


def _disagreement_lines(board: ProtocolBoard, fold: str) -> list[str]:
    numbers = source_numbers(board)
    return [f"- {_disagreement_text(d, numbers)}" for d in board_disagreements(board) if d["fold"] == fold]


def _published_markdown(board: ProtocolBoard) -> list[str]:
    tables = published(board)
    if not tables:
        return []
    metrics = published_metrics(board)
    numbers = source_numbers(board)
    out = ["## Published", "", "The published numbers for this protocol, as their sources give them: one row per "
           "method and source, a second source that gives the same numbers named on the first's row, one that "
           "gives other numbers on a row of its own (and said below the table). The measured rows above carry a "
           "model's first row in the Paper column when their configuration is the paper's. " + produce_line(board),
           "", "Sources:", ""]
    for source in _published_sources(board):
        text = f"{numbers[source.key]}. {source.name}: {source.citation}."
        if source.holds:
            text += f" Holds: {source.holds}."
        if source.note:
            text += f" {source.note}"
        out.append(text)
    kinds = {k for rows in tables.values() for row in rows for k in row.kind}
    out += ["", f"Kinds: {marks_legend(kinds)}.", ""]
    disagreeing = board_disagreements(board)
    out += [(f"The sources disagree on {len(disagreeing)} number{'s' if len(disagreeing) != 1 else ''} (listed under "
             "the folds)." if disagreeing else
             ("Where the sources give a number for the same method, they agree." if len(numbers) > 1 else "")), ""]
    for fold, rows in tables.items():
        header = ["Model"] + [label(m) for m in metrics] + ["Kind", "Source"]
        out += [f"### Fold {fold}", "", "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        for row in rows:
            cells = ([row.model] + [f"{row.values[m]:.1f}" if m in row.values else "—" for m in metrics]
                     + [f"{row.marks} {row.kind_text}", _source_cell(row, numbers)])
            out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        out.append("")
        notes = _disagreement_lines(board, fold)
        if notes:
            out += notes + [""]
    notes = published_notes(board)
    if notes:
        out += ["Notes on the rows:", ""]
        out += [f"- {', '.join(models)} [{numbers.get(source, '?')}]: {note}" for models, source, note in notes] + [""]
    return [line for i, line in enumerate(out) if line or (i and out[i - 1])]


def _notes(board: ProtocolBoard) -> list[tuple[str, str]]:
    """What the installed models say their rows on this protocol mean (a CPU budget, a recipe)."""
    from reid_bench.registry import PluginError, get_registry

    out = []
    for model in sorted({r.model for rows in board.rows.values() for r in rows}):
        try:
            note = getattr(get_registry().model(model), "protocol_notes", {}).get(board.name)
        except PluginError:
            note = None
        if note:
            out.append((model, note))
    return out


def board_json(board: ProtocolBoard) -> dict[str, Any]:
    sections: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for version, fold in board.sections():
        sections.setdefault(version, {})[fold] = [
            {"rank": r.rank, "model": r.model, "config": r.config, "config_fingerprint": r.fingerprint,
             "complete": r.complete, "seeds": r.seeds, "expected_seeds": r.expected_seeds,
             "protocol_seeds": r.protocol_seeds,
             "metrics": {m: c.as_json(is_percent(m)) for m, c in sorted(r.cells.items())},
             "per_seed": {str(s): {m: round(100.0 * v if is_percent(m) else v, 4) for m, v in sorted(vals.items())}
                          for s, vals in sorted(r.per_seed.items())},
             "num_parameters": r.params, "paper": r.paper, "paper_status": r.paper_status,
             "paper_kind": list(r.paper_kind) if r.paper is not None else None,
             "paper_source": r.paper_source if r.paper is not None else None,
             "paper_difference": None if _difference(board, r) is None else round(_difference(board, r), 4),
             "bootstrap": r.bootstrap,
             "test_selected": None if r.test_selected is None else
             {board.main_score: r.test_selected.as_json(is_percent(board.main_score))},
             "run_id": r.run_id,
             "commit": r.commit, "date": r.date, "tuned": r.tuned or None, "control": r.control}
            for r in board.rows[(version, fold)]
        ]
    return {"mode": board.mode, "main_score": board.main_score, "higher_is_better": board.higher_is_better,
            "reference_score": board.reference_score, "versions": sections, "notes": dict(_notes(board)),
            **published_json(board)}


def published_json(board: ProtocolBoard) -> dict[str, Any]:
    """The board's published numbers as data: the sources, each fold's rows with their source and
    kind, the kinds' marks and meanings, and where the sources disagree."""
    tables = published(board)
    kinds = sorted({k for rows in tables.values() for row in rows for k in row.kind}, key=list(KINDS).index)
    return {"published_sources": [s.as_json() for s in _published_sources(board)] if tables else [],
            "published": {fold: [row.as_json() for row in rows] for fold, rows in tables.items()},
            "published_kinds": {k: {"mark": KINDS[k][0], "label": KINDS[k][1], "meaning": KINDS[k][2]} for k in kinds},
            "published_disagreements": board_disagreements(board) if tables else []}


def _site_row(board: ProtocolBoard, r: Row) -> dict[str, Any]:
    metrics = {}
    for m in METRIC_NAMES:
        cell = r.cells.get(m)
        if cell is None:
            continue
        scale = 100.0 if is_percent(m) else 1.0
        metrics[m] = {"mean": None if cell.mean is None else round(scale * cell.mean, 2),
                      "std": None if cell.std is None else round(scale * cell.std, 2),
                      "seeds": {str(s): round(scale * vals[m], 2) for s, vals in sorted(r.per_seed.items()) if m in vals}}
    diff = _difference(board, r)
    return {"rank": r.rank, "model": r.model, "config": r.config, "default": r.default, "complete": r.complete,
            "control": r.control,
            "tuned": r.tuned or None, "n": r.seeds_text, "fewer_seeds": r.fewer_seeds, "params": r.params,
            "metrics": metrics, "paper": r.paper, "paper_status": r.paper_status,
            "paper_marks": r.paper_marks, "paper_kind": kind_text(r.paper_kind) if r.paper is not None else "",
            "paper_difference": None if diff is None else round(diff, 2), "bootstrap": r.bootstrap,
            "cmc": {str(s): c for s, c in sorted(r.cmc.items())}, "commit": r.commit, "date": r.date,
            "versions": r.versions, "run_id": r.run_id, "links": {str(s): u for s, u in sorted(r.links.items())}}


def site_data(board: ProtocolBoard) -> dict[str, Any]:
    """What the board's page of the site (``reid_bench.site``) draws: plain data, as JSON."""
    sections = [{"title": _section_title(board, version, fold), "fold": fold, "version": version,
                 "rows": [_site_row(board, r) for r in board.rows[(version, fold)]]}
                for version, fold in board.sections()]
    present = [m for m in METRIC_NAMES if any(m in row["metrics"] for s in sections for row in s["rows"])]
    numbers = source_numbers(board)
    published_rows = {fold: [dict(row.as_json(), source_cell=_source_cell(row, numbers)) for row in rows]
                      for fold, rows in published(board).items()}
    paper_kinds = {k for s in board.rows.values() for r in s if r.paper is not None for k in r.paper_kind}
    return {"name": board.name, "mode": board.mode, "main_score": board.main_score,
            "higher_is_better": board.higher_is_better, "reference_score": board.reference_score,
            "reference_source": board.reference_source, "columns": board.columns, "metrics": present,
            "labels": {m: label(m) for m in present}, "sections": sections,
            "published": published_rows, "published_metrics": published_metrics(board),
            "published_labels": {m: label(m) for m in published_metrics(board)},
            "published_sources": [dict(s.as_json(), number=numbers[s.key]) for s in _published_sources(board)]
            if published_rows else [],
            "published_kinds": marks_legend({k for rows in published(board).values() for row in rows for k in row.kind}),
            "published_disagreements": [{"fold": d["fold"], "text": _disagreement_text(d, numbers)}
                                        for d in board_disagreements(board)],
            "paper_legend": marks_legend(paper_kinds) if paper_kinds else "",
            "published_notes": [{"models": models, "source": source, "number": numbers.get(source), "note": note}
                                for models, source, note in published_notes(board)],
            "produce": produce_line(board)}


def render_boards(boards: dict[str, ProtocolBoard], protocols: list[str] | None = None) -> dict[str, str]:
    files = {f"{name}.md": render_markdown(board) + "\n" for name, board in sorted(boards.items())
             if not protocols or name in protocols}
    payload = {"protocols": {name: board_json(board) for name, board in sorted(boards.items())}}
    files["leaderboard.json"] = json.dumps(payload, indent=2, sort_keys=True) + "\n"
    files.update(render_site({name: site_data(board) for name, board in boards.items()}))
    return files


# ------------------------------------------------------------------------------------- the command


def _check_folder(path: Path) -> None:
    """A folder that exists or can be made: its nearest existing ancestor is a writable folder."""
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(f"{path}: cannot write there, {existing} is a file")
    if not os.access(existing, os.W_OK):
        raise PermissionError(f"{path}: cannot write there, {existing} is not writable")


def build_leaderboards(out_dir: str | Path, results_dir: str | Path, tracking_uri: str | None = None,
                       protocols: list[str] | None = None) -> dict[str, Any]:
    """Export the store (if given) into ``results_dir``, then build the boards from the results
    alone. Everything is read and checked before the first file is written; files are staged and
    moved into place, and a file whose content would not change is left untouched."""
    out, results_root = Path(out_dir), Path(results_dir)
    documents = load_results(results_root)
    new_trials = 0
    if tracking_uri is not None:
        from reid_bench.tracking import EXPERIMENT, connect

        client, experiment_id = connect(tracking_uri, EXPERIMENT, create=False)
        if experiment_id is not None:
            server = tracking_uri if tracking_uri.startswith(("http://", "https://")) else None
            exported = export_store(client, experiment_id, documents, server_url=server)
            documents, new_trials = exported.documents, exported.new_trials
            for key, doc in documents.items():  # what the store gave is checked as a file would be
                check_document(result_path(results_root, key), doc)
    if not documents:
        where = f"{tracking_uri!r} or " if tracking_uri else ""
        raise LookupError(f"no results in {where}{results_root}: run `reid-bench run` first")
    boards = reference_boards(collect(documents))
    if protocols:
        unknown = [p for p in protocols if p not in boards]
        if unknown:
            raise LookupError(f"no finished runs for protocol {unknown[0]!r}; protocols with results: "
                              f"{', '.join(sorted(boards)) or 'none'}")
    for path in (out, results_root):
        _check_folder(path)
    files = render_results(results_root, documents)
    files.update({out / name: text for name, text in render_boards(boards, protocols).items()})
    written = write_files(files)
    return {"written": sorted(str(p) for p in written), "out": str(out.resolve()), "results": str(results_root.resolve()),
            "protocols": sorted(b for b in boards if not protocols or b in protocols), "documents": len(documents),
            "new_trials": new_trials}


__all__ = ["ResultsError", "build_leaderboards", "collect", "render_boards"]


def field_methods(protocol: str) -> list[str]:
    """The installed models that declare a method the protocol's published table has numbers for,
    in the table's order."""
    from reid_bench.registry import get_registry

    registry = get_registry()
    declared = registry.published_methods()
    return [model for method in registry.protocol(protocol).references for model in declared.get(method, ())]


if __name__ == "__main__":  # `python -m reid_bench.leaderboard methods PROTOCOL` (make field-protocol)
    import sys

    if len(sys.argv) != 3 or sys.argv[1] != "methods":
        sys.exit("usage: python -m reid_bench.leaderboard methods PROTOCOL")
    print(" ".join(field_methods(sys.argv[2])))
