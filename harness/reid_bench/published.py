"""Published numbers as data: where each one comes from and what kind of number it is.

A protocol's ``references`` ({method: {fold: {metric: percent}}}) are the values its boards put in
the Paper column, one per published method and fold. ``published`` holds every published number
the protocol knows, one :class:`Published` entry per (method, source), each naming its source
(a :class:`PublishedSource` of ``published_sources``: repository, file, lines or figure, commit)
and its kind (:data:`KINDS`: a best test epoch, an average over runs, read from a figure, ...).
The first entry of a method that has a fold is that fold's Paper value; later entries from other
sources stay beside it on the board's Published section, and where two sources give different
numbers for the same method, fold and metric both are kept and the board says so
(:func:`disagreements`). :func:`check` finds inconsistent data (a test runs it on every
installed protocol).

A method is keyed as the literature names it ("SM-SGE", "OG-Net-Small"), never by a plugin's
entry-point name: the numbers belong to the protocol, and a model reaches them only by declaring
the method it implements (``Model.published_as``). :func:`for_boards` shows each entry under the
name of every installed model that declares its method, so renaming an entry point (or
registering the class twice) cannot orphan a published number.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping

#: code -> (mark, short label, what it means). A number can be of several kinds at once (an
#: average over runs of each run's best test epoch, read from a figure): an entry lists them all.
KINDS: dict[str, tuple[str, str, str]] = {
    "best-test-epoch": ("†", "best test epoch",
                        "the released code scores the test set while it trains and reports its best epoch "
                        "(test-selected: the harness never does this)"),
    "average-of-runs": ("‡", "average over runs", "the source says the number is an average over several runs"),
    "figure": ("§", "read from a figure",
               "read by eye off an image of a table (no text or data file to copy it from)"),
    "one-run": ("¶", "one run, fixed budget",
                "one trained model, scored after its fixed training budget (no epoch picked on the test set)"),
    "no-training": ("°", "no training", "a fixed descriptor, nothing trained: no epoch to select"),
    "unstated": ("?", "selection not stated", "the source does not say how the number was obtained or selected"),
}


@dataclass(frozen=True)
class PublishedSource:
    """A table, figure or list of published numbers, as precisely as it can be found again."""

    key: str
    name: str
    #: Where it is: repository, file, lines or figure, commit.
    citation: str
    #: What it holds: metrics, methods, datasets, and what it leaves out.
    holds: str = ""
    note: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"key": self.key, "name": self.name, "citation": self.citation, "holds": self.holds, "note": self.note}


@dataclass(frozen=True)
class Published:
    """One method's numbers in one source: {fold: {metric: percent}}, and what kind they are.
    ``method`` is the literature's name for it; on a board (:func:`for_boards`), its board name."""

    method: str
    source: str
    kind: tuple[str, ...]
    values: Mapping[str, Mapping[str, float]]
    #: How many runs an average is over, where the source says.
    runs: int | None = None
    note: str = ""

    @property
    def marks(self) -> str:
        return "".join(KINDS[k][0] for k in self.kind if k in KINDS)

    @property
    def kind_text(self) -> str:
        return kind_text(self.kind, self.runs)

    def as_json(self) -> dict[str, Any]:
        return {"model": self.method, "source": self.source, "kind": list(self.kind), "kind_text": self.kind_text,
                "marks": self.marks, "runs": self.runs, "note": self.note,
                "values": {fold: dict(values) for fold, values in self.values.items()}}


def kind_text(kind: Iterable[str], runs: int | None = None) -> str:
    """``average over runs (how many: not stated), best test epoch``."""
    parts = []
    for code in kind:
        label = KINDS[code][1] if code in KINDS else code
        if code == "average-of-runs":
            label = f"average over {runs} runs" if runs else "average over runs (how many: not stated)"
        parts.append(label)
    return ", ".join(parts)


def marks_legend(kinds: Iterable[str]) -> str:
    """``† best test epoch: ...; § read from a figure: ...`` for the kinds given, in KINDS order."""
    wanted = set(kinds)
    return "; ".join(f"{mark} {label}: {text}" for code, (mark, label, text) in KINDS.items() if code in wanted)


LEGACY_SOURCE = "reference_source"


def published_of(protocol: Any) -> tuple[tuple[PublishedSource, ...], tuple[Published, ...]]:
    """A protocol's sources and entries; a protocol that only sets ``references`` (a plugin
    written before ``published`` existed) gets one source, its ``reference_source``, whose kind
    is not stated."""
    entries = tuple(getattr(protocol, "published", ()) or ())
    if entries:
        return tuple(getattr(protocol, "published_sources", ()) or ()), entries
    references = getattr(protocol, "references", {}) or {}
    if not references:
        return (), ()
    source = PublishedSource(LEGACY_SOURCE, "the protocol's reference_source",
                             getattr(protocol, "reference_source", "") or "not given")
    return (source,), tuple(Published(method, LEGACY_SOURCE, ("unstated",), values)
                            for method, values in references.items())


def for_boards(entries: Iterable[Published], declared: Mapping[str, Iterable[str]],
               unimplemented_names: Mapping[str, str] | None = None) -> tuple[Published, ...]:
    """The entries as boards, ``info`` and the site name them: a method under the name of each
    installed model that declares it (``declared``: {method: model names}; the same numbers once
    per model), else under the protocol's ``unimplemented_names`` name for it, else its key."""
    names = unimplemented_names or {}
    out: list[Published] = []
    for entry in entries:
        models = list(declared.get(entry.method, ()))
        out.extend(replace(entry, method=name) for name in (models or [names.get(entry.method, entry.method)]))
    return tuple(out)


def board_published(protocol: Any, declared: Mapping[str, Iterable[str]]) -> tuple[
        tuple[PublishedSource, ...], tuple[Published, ...], dict[str, dict[str, dict[str, float]]]]:
    """A protocol's sources, its entries named for the boards through the models' declarations
    (``declared``: {method: model names}, the registry's ``published_methods()``; see
    :func:`for_boards`), and those models' Paper values, {model: {fold: {metric: percent}}}: the
    only join of published numbers to measured rows."""
    sources, entries = published_of(protocol)
    named = for_boards(entries, declared, getattr(protocol, "unimplemented_names", None))
    models = {model for names in declared.values() for model in names}
    papers = {model: values for model, values in paper_references(named).items() if model in models}
    return sources, named, papers


def paper_entry(entries: Iterable[Published], method: str, fold: str) -> Published | None:
    """The entry whose value the Paper column shows for ``method`` on ``fold``: the first that has it."""
    return next((e for e in entries if e.method == method and fold in e.values), None)


def paper_references(entries: Iterable[Published]) -> dict[str, dict[str, dict[str, float]]]:
    """``references`` from the entries: per method and fold, the first entry's values."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for entry in entries:
        for fold, values in entry.values.items():
            out.setdefault(entry.method, {}).setdefault(fold, dict(values))
    return out


def _same(a: float, b: float) -> bool:
    return round(float(a), 4) == round(float(b), 4)


def disagreements(entries: Iterable[Published]) -> list[dict[str, Any]]:
    """Every (method, fold, metric) that two sources give different numbers for, with each
    source's number: ``{"model", "fold", "metric", "values": {source: value}}`` ("model": the
    method as the entries name it)."""
    seen: dict[tuple[str, str, str], dict[str, float]] = {}
    for entry in entries:
        for fold, values in entry.values.items():
            for metric, value in values.items():
                seen.setdefault((entry.method, fold, metric), {})[entry.source] = float(value)
    out = []
    for (model, fold, metric), by_source in seen.items():
        numbers = list(by_source.values())
        if any(not _same(numbers[0], v) for v in numbers[1:]):
            out.append({"model": model, "fold": fold, "metric": metric, "values": dict(by_source)})
    return out


@dataclass
class PublishedRow:
    """A row of a fold's published table: one entry's numbers, and the other sources that give
    the same numbers (``agreeing``) or different ones (``differing``, each on a row of its own)."""

    model: str
    values: dict[str, float]
    source: str
    kind: tuple[str, ...]
    runs: int | None = None
    note: str = ""
    paper: bool = False  # the value the Paper column uses for this model and fold
    agreeing: list[str] = field(default_factory=list)
    differing: list[str] = field(default_factory=list)

    @property
    def marks(self) -> str:
        return "".join(KINDS[k][0] for k in self.kind if k in KINDS)

    @property
    def kind_text(self) -> str:
        return kind_text(self.kind, self.runs)

    def as_json(self) -> dict[str, Any]:
        return {"model": self.model, "metrics": dict(self.values), "source": self.source, "kind": list(self.kind),
                "kind_text": self.kind_text, "marks": self.marks, "runs": self.runs, "note": self.note,
                "paper": self.paper, "agreeing": list(self.agreeing), "differing": list(self.differing)}


def fold_rows(entries: Iterable[Published], fold: str) -> list[PublishedRow]:
    """The rows of one fold, in entry order: a method's first entry is its row; a later entry
    whose every number equals that row's joins it as ``agreeing``; one with a number the row
    lacks or with a different number gets a row of its own (``differing`` when a number differs)."""
    rows: list[PublishedRow] = []
    first: dict[str, PublishedRow] = {}
    for entry in entries:
        if fold not in entry.values:
            continue
        values = {m: float(v) for m, v in entry.values[fold].items()}
        lead = first.get(entry.method)
        if lead is not None and all(m in lead.values and _same(lead.values[m], v) for m, v in values.items()):
            lead.agreeing.append(entry.source)
            continue
        row = PublishedRow(entry.method, values, entry.source, tuple(entry.kind), entry.runs, entry.note,
                           paper=lead is None)
        if lead is not None and any(m in lead.values and not _same(lead.values[m], v) for m, v in values.items()):
            row.differing.append(lead.source)
            lead.differing.append(entry.source)
        rows.append(row)
        first.setdefault(entry.method, row)
    return rows


def check(protocol: Any) -> list[str]:
    """What is wrong with a protocol's published data (empty when nothing is): every entry names
    a listed source with a name and a citation, has known kinds, only the protocol's folds and
    metrics and values in [0, 100]; ``references`` are exactly the first entries' values; every
    ``unimplemented_names`` key is one of its published methods."""
    name = getattr(protocol, "__name__", type(protocol).__name__)
    sources, entries = published_of(protocol)
    problems = []
    keys = [s.key for s in sources]
    if len(set(keys)) != len(keys):
        problems.append(f"{name}: a source key is listed twice: {keys}")
    for source in sources:
        if not (source.key and source.name and source.citation):
            problems.append(f"{name}: source {source.key!r} needs a key, a name and a citation")
    try:
        metrics = set(protocol().metrics) if isinstance(protocol, type) else set(protocol.metrics)
    except Exception as exc:  # noqa: BLE001 - reported, not raised: the check lists problems
        problems.append(f"{name}: cannot list its metrics: {exc}")
        metrics = None
    folds = set(getattr(protocol, "folds", ()))
    for entry in entries:
        where = f"{name}: {entry.method} from {entry.source!r}"
        if entry.source not in keys:
            problems.append(f"{where}: the source is not one of the protocol's published_sources ({', '.join(keys)})")
        if not entry.kind:
            problems.append(f"{where}: no kind")
        for code in entry.kind:
            if code not in KINDS:
                problems.append(f"{where}: unknown kind {code!r} (kinds: {', '.join(KINDS)})")
        if entry.runs is not None and "average-of-runs" not in entry.kind:
            problems.append(f"{where}: runs given for a number that is not an average over runs")
        if not entry.values:
            problems.append(f"{where}: no values")
        for fold, values in entry.values.items():
            if fold not in folds:
                problems.append(f"{where}: fold {fold!r} is not one of the protocol's folds "
                                f"({', '.join(sorted(folds))})")
            if not values:
                problems.append(f"{where}: fold {fold!r} has no values")
            for metric, value in values.items():
                if metrics is not None and metric not in metrics:
                    problems.append(f"{where}: metric {metric!r} is not one of the protocol's metrics")
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 100.0:
                    problems.append(f"{where}: {fold}/{metric} = {value!r} is not a percentage")
    references = getattr(protocol, "references", {}) or {}
    expected = paper_references(entries)
    if references != expected:
        methods = (sorted(set(references) ^ set(expected))
                   or sorted(m for m in references if references[m] != expected.get(m)))
        problems.append(f"{name}: references are not the first published entry of each method and fold "
                        f"(differ for {', '.join(methods)})")
    for method in getattr(protocol, "unimplemented_names", {}) or {}:
        if method not in expected:
            problems.append(f"{name}: unimplemented_names names {method!r}, which has no published entry")
    return problems
