"""Experiment files: what ``reid-bench run --config FILE_OR_FOLDER`` runs, and what
``make leaderboards`` replays to rebuild the committed boards.

A file holds one or more runs, each a model on a protocol with its ``--set`` values::

    [[run]]
    model = "lstm-1"
    protocol = "synth-gait"
    seeds = 3                 # optional: the protocol's default
    folds = ["A"]             # optional: every fold
    [run.set]                 # optional: model keys bare, probe.* and data.* scoped
    hidden = 128
    epochs = 3

A file with a single run may write it at the top level (``model = ...``, ``[set]``). TOML is read
with the standard library's ``tomllib``; nothing here imports torch, Ray or MLflow.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reid_bench.api import MAX_SEEDS

RUN_KEYS = ("model", "protocol", "seeds", "folds", "set")


class ExperimentError(ValueError):
    """An experiment file that cannot be run as written; the message names the file and the key."""


@dataclass(frozen=True)
class Experiment:
    model: str
    protocol: str
    sets: tuple[str, ...] = ()
    seeds: int | None = None
    folds: tuple[str, ...] | None = None
    source: str = ""

    def command(self) -> str:
        """The equivalent command line, for logs and docs."""
        parts = ["reid-bench run", "--model", self.model, "--protocol", self.protocol]
        if self.seeds is not None:
            parts += ["--seeds", str(self.seeds)]
        for fold in self.folds or ():
            parts += ["--fold", fold]
        for item in self.sets:
            parts += ["--set", item]
        return " ".join(parts)


def _set_value(value: Any, where: str) -> str:
    """A TOML value as the string ``--set`` would carry."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, (int, float, str)) and not isinstance(v, bool) for v in value):
        return ",".join(str(v) for v in value)
    raise ExperimentError(f"{where}: expected a number, a string, a boolean or a flat list, got {value!r}")


def _flatten_sets(table: dict[str, Any], where: str, prefix: str = "") -> list[str]:
    out = []
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):  # [run.set.data] or data = { ... } reads as data.*
            out += _flatten_sets(value, where, f"{name}.")
        else:
            out.append(f"{name}={_set_value(value, f'{where}: set.{name}')}")
    return out


def _experiment(entry: Any, where: str) -> Experiment:
    if not isinstance(entry, dict):
        raise ExperimentError(f"{where}: expected a table of {', '.join(RUN_KEYS)}")
    unknown = sorted(set(entry) - set(RUN_KEYS))
    if unknown:
        raise ExperimentError(f"{where}: unknown key {unknown[0]!r}; a run has {', '.join(RUN_KEYS)}")
    for key in ("model", "protocol"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise ExperimentError(f"{where}: {key!r} must be a non-empty string")
    seeds = entry.get("seeds")
    if seeds is not None and (isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= MAX_SEEDS):
        raise ExperimentError(f"{where}: 'seeds' must be an integer from 1 to {MAX_SEEDS}, got {seeds!r}")
    folds = entry.get("folds")
    if folds is not None and (not isinstance(folds, list) or not folds or not all(isinstance(f, str) for f in folds)):
        raise ExperimentError(f"{where}: 'folds' must be a non-empty list of fold names, got {folds!r}")
    sets = entry.get("set", {})
    if not isinstance(sets, dict):
        raise ExperimentError(f"{where}: 'set' must be a table of key = value")
    return Experiment(entry["model"], entry["protocol"], tuple(_flatten_sets(sets, where)), seeds,
                      tuple(folds) if folds is not None else None, where)


def load_file(path: Path) -> list[Experiment]:
    if not path.is_file():  # a FIFO or a device would block the read, or never end it
        raise ExperimentError(f"{path}: not a regular file (an experiment file is a .toml file)")
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ExperimentError(f"{path}: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ExperimentError(f"{path}: cannot read: {exc}") from None
    if "run" in doc:
        extra = sorted(set(doc) - {"run"})
        if extra:
            raise ExperimentError(f"{path}: key {extra[0]!r} next to [[run]] tables; put it inside a run")
        runs = doc["run"]
        if not isinstance(runs, list) or not runs:
            raise ExperimentError(f"{path}: 'run' must be one or more [[run]] tables")
        return [_experiment(entry, f"{path} run {i}") for i, entry in enumerate(runs, 1)]
    if not doc:
        raise ExperimentError(f"{path}: no run in this file")
    return [_experiment(doc, str(path))]


def load(path: str | Path) -> list[Experiment]:
    """The runs of one file, or of every ``*.toml`` below a folder (sorted by path)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.toml") if not p.is_dir())
        if not files:
            raise ExperimentError(f"{path}: no .toml experiment file in this folder")
        return [e for f in files for e in load_file(f)]
    if not path.exists():
        raise ExperimentError(f"{path}: no such file or folder")
    return load_file(path)


def _toml_value(text: str) -> str:
    """A --set string as TOML: integers and booleans bare, anything else as the same string."""
    if text.lstrip("-").isdigit():
        return text
    if text in ("true", "false"):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else f'"{key}"'


def from_results(docs: list[dict[str, Any]], protocol_folds: dict[str, list[str]]) -> dict[str, str]:
    """The experiment files that reproduce result documents (``results/``): one file per protocol
    and model (``<protocol>/<model>.toml``), one run per configuration, with the --set values as
    typed and the seeds and folds the results expected. A configuration with results at two
    protocol versions is one run: a replay runs the installed version."""
    files: dict[str, list[str]] = {}
    for doc in sorted(docs, key=lambda d: (d["protocol"], d["model"], json_key(d["config_label"]))):
        keys = doc["expected_trials"]
        folds = sorted({k.rsplit("/seed", 1)[0] for k in keys})
        seeds = sorted({int(k.rsplit("/seed", 1)[1]) for k in keys})
        lines = ["[[run]]", f'model = "{doc["model"]}"', f'protocol = "{doc["protocol"]}"']
        if seeds != list(range(len(seeds))):
            raise ExperimentError(f"{doc['protocol']}/{doc['model']}: seeds {seeds} are not 0..n-1")
        lines.append(f"seeds = {len(seeds)}")
        if sorted(protocol_folds.get(doc["protocol"], [])) != folds:
            lines.append("folds = [" + ", ".join(f'"{f}"' for f in folds) + "]")
        label = doc["config_label"]
        if label:
            lines.append("[run.set]")
            for key, value in sorted(label.items()):
                bare = key[len("model."):] if key.startswith("model.") else key
                lines.append(f"{_toml_key(bare)} = {_toml_value(str(value))}")
        runs = files.setdefault(f"{doc['protocol']}/{doc['model']}.toml", [])
        if "\n".join(lines) not in runs:  # the same configuration at two protocol versions: one replay
            runs.append("\n".join(lines))
    return {path: "\n\n".join(runs) + "\n" for path, runs in files.items()}


def json_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def write_from_results(results_dir: Path, out_dir: Path) -> list[Path]:
    """Rewrite ``out_dir`` so that its files reproduce every result under ``results_dir``."""
    from reid_bench.registry import get_registry

    docs = [json.loads(p.read_text()) for p in sorted(Path(results_dir).rglob("*.json"))]
    registry = get_registry()
    folds = {name: list(registry.protocol(name).folds) for name in {d["protocol"] for d in docs}}
    files = from_results(docs, folds)
    for old in Path(out_dir).rglob("*.toml"):
        if str(old.relative_to(out_dir)) not in files:
            old.unlink()
    written = []
    for rel, text in files.items():
        path = Path(out_dir) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(HEADER + text)
        written.append(path)
    return written


HEADER = ("# Written from results/ by `python -m reid_bench.experiments results experiments`; replayed by\n"
          "# `make leaderboards` (`reid-bench run --config experiments/`, which skips what the store holds).\n\n")


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 3:
        sys.exit("usage: python -m reid_bench.experiments RESULTS_DIR EXPERIMENTS_DIR")
    for written in write_from_results(Path(sys.argv[1]), Path(sys.argv[2])):
        print(written)
