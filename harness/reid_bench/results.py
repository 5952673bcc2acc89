"""Results as data: one JSON document per (protocol, protocol version, model, resolved config).

A document holds every finished (fold, seed) trial of its configuration, whichever invocation
ran it, each once (the latest to finish), with all its metrics, its CMC curve, its per-query
outcomes, the config (resolved, and ``config_diff``: where it departs from the model's defaults
on the protocol; ``config_label``: the ``--set`` values that reached it), versions, commit and
dataset checksums. ``reid-bench leaderboard``
exports the tracking store into a folder of these documents (``results/`` in the repository)
and builds the leaderboards from that folder alone, so committed boards can be rebuilt from
committed results without the store that produced them (MTEB keeps its results the same way).

Layout: ``<root>/<protocol>/v<version>/<model>/<config fingerprint>.json``. Metric values are
fractions in [0, 1] everywhere in the data; boards show percent.
"""

from __future__ import annotations

import functools
import json
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

from reid_bench.modes import METRIC_NAMES
from reid_bench.tracking import Tag

SCHEMA = "reid-bench.result/1"
Key = tuple[str, str, str, str]  # protocol, protocol version, model, config fingerprint


class ResultsError(ValueError):
    """A results file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class StoreExport:
    documents: dict[Key, dict[str, Any]]
    new_trials: int


def key_of(doc: dict[str, Any]) -> Key:
    return (doc["protocol"], str(doc["protocol_version"]), doc["model"], doc["config_fingerprint"])


_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def result_path(root: Path, key: Key) -> Path:
    """Where a document lives; every part is checked first, so a name cannot reach outside."""
    protocol, version, model, fingerprint = key
    for what, value in (("protocol", protocol), ("protocol_version", version), ("model", model),
                        ("config_fingerprint", fingerprint)):
        if not isinstance(value, str) or not _SAFE_NAME.match(value) or value in (".", ".."):
            raise ResultsError(f"{what} {value!r}: not a name a results path can be built from "
                               "(letters, digits, '.', '_', '-')")
    return Path(root) / protocol / f"v{version}" / model / f"{fingerprint}.json"


def dumps(doc: dict[str, Any]) -> str:
    """The one serialisation of a document: the same results always give the same bytes."""
    return json.dumps(doc, indent=1, sort_keys=True, allow_nan=False) + "\n"


def trial_key(trial: dict[str, Any]) -> str:
    return f"{trial['fold']}/seed{trial['seed']}"


@functools.lru_cache(maxsize=1)
def _validator() -> Any:
    import jsonschema

    schema = json.loads(resources.files("reid_bench").joinpath("result.schema.json").read_text())
    # The metric names a result may carry: the trial's metrics (the rest of an MLflow run's
    # metrics are timings and curves) as reid_bench.modes declares them.
    schema["$defs"]["metric"]["enum"] = list(METRIC_NAMES)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _where(error: Any) -> str:
    """``trials[3].metrics.rank1`` from a validation error's path."""
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(the document)"


def check_document(path: Path, doc: Any, root: Path | None = None) -> dict[str, Any]:
    """A results document checked whole: the declared schema (``result.schema.json``: every key,
    type and range), then what a schema cannot say (each (fold, seed) once, an installed protocol
    and its folds, the file where its key says). ResultsError names the file, the key and why."""
    errors = sorted(_validator().iter_errors(doc), key=lambda e: (list(e.absolute_path), e.message))
    if errors:
        error = errors[0]
        raise ResultsError(f"{path}: {_where(error)}: {error.message}")
    seen: set[str] = set()
    for i, trial in enumerate(doc["trials"]):
        if trial_key(trial) in seen:
            raise ResultsError(f"{path}: trials[{i}] repeats {trial_key(trial)}")
        seen.add(trial_key(trial))
    _check_protocol(path, doc)
    if root is not None:
        expected = result_path(root, key_of(doc))
        if path.resolve() != expected.resolve():
            raise ResultsError(f"{path}: holds {'/'.join(key_of(doc))}, which belongs in {expected}")
    return doc


def _check_protocol(path: Path, doc: dict[str, Any]) -> None:
    """The protocol must be installed and every fold one of its folds: a result cannot make up a
    board or a section."""
    from reid_bench.registry import PluginError, get_registry

    try:
        folds = get_registry().protocol(doc["protocol"]).folds
    except PluginError as exc:
        raise ResultsError(f"{path}: protocol: {exc}") from None
    for where, fold in [*((f"trials[{i}].fold", t["fold"]) for i, t in enumerate(doc["trials"])),
                        *((f"expected_trials[{i}]", k.rsplit("/seed", 1)[0]) for i, k in enumerate(doc["expected_trials"]))]:
        if fold not in folds:
            raise ResultsError(f"{path}: {where}: protocol {doc['protocol']!r} has no fold {fold!r} "
                               f"(folds: {', '.join(folds)})")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def load_results(root: str | Path) -> dict[Key, dict[str, Any]]:
    """Every document under ``root`` (none if the folder does not exist), each checked."""
    root = Path(root)
    docs: dict[Key, dict[str, Any]] = {}
    if not root.exists():
        return docs
    if not root.is_dir():
        raise ResultsError(f"{root}: results folder is not a folder")
    for path in sorted(root.rglob("*.json")):
        if not path.is_file():
            raise ResultsError(f"{path}: not a regular file")
        try:
            raw = json.loads(path.read_text(), parse_constant=_reject_constant)
        except (OSError, UnicodeDecodeError) as exc:
            raise ResultsError(f"{path}: cannot read: {exc}") from None
        except json.JSONDecodeError as exc:
            raise ResultsError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        except ValueError as exc:
            raise ResultsError(f"{path}: {exc}") from None
        doc = check_document(path, raw, root)
        docs[key_of(doc)] = doc
    return docs


def merge(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """One document from two of the same key: each (fold, seed) once, the later to finish wins."""
    if old is None:
        return new
    trials: dict[str, dict[str, Any]] = {}
    for trial in [*old["trials"], *new["trials"]]:
        current = trials.get(trial_key(trial))
        if current is None or (trial["end_time"], trial["run_id"]) > (current["end_time"], current["run_id"]):
            trials[trial_key(trial)] = trial
    latest = new if (_latest(new), new.get("tuned") or "") >= (_latest(old), old.get("tuned") or "") else old
    merged = dict(latest)
    merged["trials"] = sorted(trials.values(), key=lambda t: (t["fold"], t["seed"]))
    merged["expected_trials"] = sorted(set(old["expected_trials"]) | set(new["expected_trials"]))
    return merged


def _latest(doc: dict[str, Any]) -> int:
    return max((t["end_time"] for t in doc["trials"]), default=0)


# ------------------------------------------------------------------------------------- the store


def export_store(client: Any, experiment_id: str, known: dict[Key, dict[str, Any]],
                 server_url: str | None = None) -> StoreExport:
    """Documents for every configuration with a finished trial in the store, merged with
    ``known``. A trial already in ``known`` (same run id) is not read again. With the URL of an
    MLflow server, each new trial keeps the address of its run's page (``mlflow_url``)."""

    parents = {p.info.run_id: p for p in client.search_runs(
        [experiment_id], filter_string=f"tags.`{Tag.KIND}` = 'invocation'", max_results=50000)
        if Tag.PROTOCOL in p.data.tags}
    children = client.search_runs([experiment_id], filter_string=f"tags.`{Tag.KIND}` = 'trial'", max_results=50000)
    known_trials = {t["run_id"]: t for doc in known.values() for t in doc["trials"]}
    invocations: dict[Key, list[Any]] = {}
    for parent in parents.values():
        invocations.setdefault(_key_from_tags(parent.data.tags), []).append(parent)
    fresh: dict[Key, dict[str, Any]] = {}
    for key, group in invocations.items():
        group.sort(key=lambda p: (p.info.start_time, p.info.run_id))
        doc = _document_from_parent(group[-1])  # the latest invocation describes the configuration
        doc["expected_trials"] = sorted({k for p in group for k in json.loads(p.data.tags.get(Tag.EXPECTED_TRIALS, "[]"))})
        doc["config"] = known.get(key, {}).get("config", {})
        fresh[key] = doc
    new_trials = 0
    for child in children:
        parent = parents.get(child.data.tags.get(Tag.PARENT, ""))
        if parent is None or child.info.status != "FINISHED":
            continue
        doc = fresh[_key_from_tags(parent.data.tags)]
        trial = known_trials.get(child.info.run_id)
        if trial is None:
            trial = _trial_from_run(client, child, parent)
            if server_url:
                trial["mlflow_url"] = f"{server_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{child.info.run_id}"
            new_trials += 1
            config = trial.pop("config")
            if config:
                doc["config"] = config
        doc["trials"].append(trial)
    documents = dict(known)
    for key, doc in fresh.items():
        if doc["trials"]:
            doc["trials"] = _one_per_key(doc["trials"])
            documents[key] = merge(known.get(key), doc)
    return StoreExport(documents, new_trials)


def _one_per_key(trials: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    best: dict[str, dict[str, Any]] = {}
    for trial in trials:
        current = best.get(trial_key(trial))
        if current is None or (trial["end_time"], trial["run_id"]) > (current["end_time"], current["run_id"]):
            best[trial_key(trial)] = trial
    return sorted(best.values(), key=lambda t: (t["fold"], t["seed"]))


def _key_from_tags(tags: dict[str, str]) -> Key:
    return (tags[Tag.PROTOCOL], tags.get(Tag.PROTOCOL_VERSION, "?"),
            tags.get(Tag.MODEL, "?"), tags.get(Tag.CONFIG_FINGERPRINT, ""))


def _document_from_parent(parent: Any) -> dict[str, Any]:
    tags = parent.data.tags
    protocol, version, model, fingerprint = _key_from_tags(tags)
    return {
        "schema": SCHEMA, "protocol": protocol, "protocol_version": version, "model": model,
        "config_fingerprint": fingerprint, "mode": tags.get(Tag.MODE, "retrieval"),
        "main_score": tags.get(Tag.MAIN_SCORE, "rank1"),
        "config_diff": json.loads(tags.get(Tag.CONFIG_DIFF) or tags.get(Tag.OVERRIDES) or "{}"),
        "config_label": json.loads(tags.get(Tag.CONFIG_LABEL) or tags.get(Tag.OVERRIDES) or "{}"),
        **({"release_diff": json.loads(tags[Tag.RELEASE_DIFF])} if tags.get(Tag.RELEASE_DIFF) else {}),
        "tuned": tags.get(Tag.TUNED) or None, "config": {}, "expected_trials": [], "trials": [],
        **({"evaluated_from": json.loads(tags[Tag.EVALUATED_FROM])} if tags.get(Tag.EVALUATED_FROM)
           else {}),
    }


def _trial_from_run(client: Any, run: Any, parent: Any) -> dict[str, Any]:
    tags, metrics = run.data.tags, run.data.metrics
    detail = _result_artifact(client, run.info.run_id)
    end = int(run.info.end_time or run.info.start_time)
    trial = {
        "fold": tags.get(Tag.FOLD, ""),
        "seed": int(tags.get(Tag.SEED, "-1")),
        "run_id": run.info.run_id,
        "invocation": parent.info.run_id,
        "end_time": end,
        "date": datetime.fromtimestamp(end / 1000, tz=timezone.utc).strftime("%Y-%m-%d"),
        "metrics": {k: float(metrics[k]) for k in METRIC_NAMES if k in metrics},
        "num_parameters": int(metrics["num_parameters"]) if "num_parameters" in metrics else None,
        "wall_s": round(float(metrics["wall_time_s"]), 3) if "wall_time_s" in metrics else None,
        "device": tags.get(Tag.DEVICE, ""),
        "commit": tags.get(Tag.GIT_COMMIT, "unknown"),
        "versions": {name: tags[tag] for name, tag in Tag.VERSIONS.items() if tag in tags}
                    | {"reid_bench": tags.get(Tag.VERSION, "?")},
        "dataset_checksums": {k.removeprefix(Tag.DATASET_CHECKSUM): v for k, v in sorted(tags.items())
                              if k.startswith(Tag.DATASET_CHECKSUM)},
        **({"test_selected": selected} if (selected := {k.removeprefix("test_selected/"): float(v)
                                                          for k, v in metrics.items()
                                                          if k.startswith("test_selected/")}) else {}),
        "cmc": [round(float(v), 6) for v in detail.get("cmc", [])],
        "per_query": detail.get("per_query"),
        "config": detail.get("config"),
    }
    return trial


def _result_artifact(client: Any, run_id: str) -> dict[str, Any]:
    """The trial's full result (CMC, per-query outcomes, resolved config), as the driver logged it."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, "result.json", tmp)
            return json.loads(Path(path).read_text())
        except Exception:  # a run recorded before the artifact existed, or with its artifacts gone
            return {}


# ------------------------------------------------------------------------------------- writing


def render_results(root: str | Path, documents: dict[Key, dict[str, Any]]) -> dict[Path, str]:
    return {result_path(Path(root), key): dumps(doc) for key, doc in sorted(documents.items())}


def _file_mode() -> int:
    """0666 less the user's umask: what ``open`` would have made."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def write_files(files: dict[Path, str]) -> list[Path]:
    """Write every file or none: all are staged next to their targets first, then moved in.
    Files whose content is unchanged are left alone. Returns the paths written."""
    changed = {p: text for p, text in files.items() if not (p.is_file() and p.read_text() == text)}
    mode = _file_mode()
    staged: list[tuple[Path, Path]] = []
    try:
        for path, text in changed.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            staged.append((Path(tmp), path))
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            os.chmod(tmp, mode)  # mkstemp makes 0600: a served or shared board must be readable
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, path in staged:
        os.replace(tmp, path)
    return sorted(changed)
