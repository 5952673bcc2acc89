"""One trial = one (model, protocol, fold, seed). ``execute_trial`` is the only code that runs it,
whether Ray dispatches it or the in-process runner calls it directly."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from reid_bench.api import DataAccess, DataSpec, FoldData, Model, Protocol, Record, SampleSet, TrialContext
from reid_bench.config import (ConfigError, Overrides, apply_overrides, check_config, config_dict, fingerprint,
                               run_settings_of)
from reid_bench.registry import Registry, get_registry


@dataclass(frozen=True)
class TrialSpec:
    """Everything a worker needs; plain data so Ray can ship it (paths are absolute)."""

    model: str
    protocol: str
    fold: str
    seed: int
    overrides: dict[str, dict[str, str]] = field(default_factory=dict)
    data_root: str | None = None
    device: str = "auto"
    work_dir: str = ""
    threads: int | None = None
    cache_dir: str | None = "default"
    #: "test": the protocol's fold; "validation": a split carved from its training data (tune).
    split: str = "test"
    #: Further folds that share ``fold``'s training set: one fit, evaluated on each of them.
    also: tuple[str, ...] = ()
    #: A training or model checkpoint of this trial to continue from (a folder or storage URI).
    resume_from: str | None = None
    #: Training checkpoints every N epochs or M minutes (0: that rule off), the newest K kept.
    checkpoint_epochs: int = 10
    checkpoint_minutes: float = 10.0
    checkpoint_keep: int = 2
    #: Keep the fitted model as a checkpoint (an MLflow artifact of each fold's run).
    save_model: bool = True
    #: Every N epochs also score the test split and keep each fold's best epoch (the releases'
    #: way of reporting: test-selected, recorded apart from the result; 0: off).
    report_every: int = 0

    @property
    def key(self) -> str:
        return f"{self.fold}/seed{self.seed}"

    @property
    def folds(self) -> tuple[str, ...]:
        return (self.fold, *self.also)

    @property
    def keys(self) -> list[str]:
        return [f"{fold}/seed{self.seed}" for fold in self.folds]


@dataclass
class ResolvedConfig:
    """The configuration a run actually uses, after paper defaults, per-protocol values and --set."""

    model: Any
    probe: Any
    data: dict[str, dict[str, Any]]
    model_version: str = "1"
    #: How retrieval ranks on this run, and the fields where it departs from the protocol's
    #: declared scoring (a named switch: part of the configuration, shown on the row).
    scoring: Any = None
    eval: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: A fold whose release sets its own values (SimMC's MIC weight on IAS-B): its configuration.
    per_fold: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: Every setting that differs from the model's release on this protocol, spelt as --set
    #: takes it (budget, recipe, data options, scoring): what a leaderboard row says it is.
    release_diff: dict[str, str] = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = {"model": config_dict(self.model), "probe": config_dict(self.probe), "data": self.data,
               "model_version": self.model_version}
        if self.eval:  # only when it differs from the protocol's: other fingerprints stay as they were
            out["eval"] = dict(sorted(self.eval.items()))
        if self.per_fold:  # likewise: only for models whose release sets values per fold
            base = config_dict(self.model)
            out["folds"] = {fold: {k: v for k, v in config_dict(cfg).items() if base.get(k) != v}
                            for fold, cfg in sorted(self.per_fold.items())}
        return out

    def model_for(self, fold: str) -> Any:
        """The model configuration a trial of ``fold`` runs."""
        return self.per_fold.get(fold, self.model)

    @property
    def run_settings(self) -> dict[str, Any]:
        """How the trial runs (outside the fingerprint): the model config's run settings."""
        return run_settings_of(self.model)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.as_dict())

    def difference(self, default: "ResolvedConfig") -> dict[str, str]:
        """The fields where this config departs from ``default`` (the model's defaults on the
        protocol), spelt as ``--set`` takes them: the canonical label of a configuration, whatever
        was typed to reach it (``--set variant=full`` is the default)."""
        mine, base = self.as_dict(), default.as_dict()
        out: dict[str, str] = {}
        for name, value in mine["model"].items():
            if base["model"].get(name) != value:
                out[name] = _cli_value(value)
        for name, value in (mine["probe"] or {}).items():
            if (base["probe"] or {}).get(name) != value:
                out[f"probe.{name}"] = _cli_value(value)
        for dataset, options in mine["data"].items():
            for name, value in options.items():
                if base["data"].get(dataset, {}).get(name) != value:
                    out[f"data.{name}"] = _cli_value(value)
        for name, value in mine.get("eval", {}).items():
            if base.get("eval", {}).get(name) != value:
                out[f"eval.{name}"] = _cli_value(value)
        return dict(sorted(out.items()))


def _cli_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        flat = all(not isinstance(v, (list, tuple, dict)) for v in value)
        return ",".join(_cli_value(v) for v in value) if flat else json.dumps(value)
    return str(value)


def resolve_config(
    model_name: str,
    protocol_name: str,
    overrides: Overrides,
    registry: Registry | None = None,
) -> ResolvedConfig:
    """Validate every override against the classes it targets; raise ConfigError naming the key.

    A model's configuration on a protocol: its defaults, the release's values for the protocol
    (``protocol_overrides``) and, per fold, for the fold (``fold_overrides``), then the
    benchmark's budget (``budget_overrides``), then ``--set``. What differs from the release
    (budget and ``--set``, data options and scoring switches) is ``release_diff``: a row's label."""
    registry = registry or get_registry()
    model_cls = registry.model(model_name)
    protocol = registry.protocol(protocol_name)()
    asked, model_cfg = _model_config(model_cls, model_name, protocol_name, protocol, overrides.model)
    release, _ = _model_config(model_cls, model_name, protocol_name, protocol, {}, budget=False)
    per_fold = {}
    for fold in model_cls.fold_overrides.get(protocol_name, {}):
        _, fold_cfg = _model_config(model_cls, model_name, protocol_name, protocol, overrides.model, fold=fold)
        if fold_cfg != model_cfg:
            per_fold[fold] = fold_cfg
    probe_cfg = _probe_config(model_cls, model_name, model_cfg, protocol, overrides)
    scoring, eval_diff = _scoring(protocol, protocol_name, overrides)
    data = _data_options(registry, protocol, protocol_name, overrides)
    release_diff = {name: _cli_value(value) for name, value in config_dict(asked).items()
                    if config_dict(release).get(name) != value}
    release_data = _data_options(registry, protocol, protocol_name, Overrides())
    release_diff.update({f"data.{k}": _cli_value(v) for name, options in data.items() for k, v in options.items()
                         if release_data.get(name, {}).get(k) != v})
    release_diff.update({f"eval.{k}": _cli_value(v) for k, v in eval_diff.items()})
    return ResolvedConfig(model=model_cfg, probe=probe_cfg, data=data, model_version=str(model_cls.version),
                          scoring=scoring if protocol.mode == "retrieval" else None, eval=eval_diff,
                          per_fold=per_fold, release_diff=dict(sorted(release_diff.items())))


def _model_config(model_cls: Any, model_name: str, protocol_name: str, protocol: Protocol, sets: dict[str, str],
                  fold: str | None = None, budget: bool = True) -> tuple[Any, Any]:
    """(the configuration as asked, the one a trial runs after ``finalize_config``)."""
    layers = [model_cls.protocol_overrides.get(protocol_name, {})]
    if fold is not None:
        layers.append(model_cls.fold_overrides.get(protocol_name, {}).get(fold, {}))
    if budget:
        layers.append(model_cls.budget_overrides.get(protocol_name, {}))
    cfg = model_cls.config_class()
    for values in layers:
        if values:
            cfg = dataclasses.replace(cfg, **values)
    cfg = apply_overrides(cfg, sets, f"model {model_name!r}")
    try:
        final = model_cls.finalize_config(cfg, protocol)
    except ValueError as exc:
        raise ConfigError(f"model {model_name!r}: {exc}") from None
    check_config(final, f"model {model_name!r}")
    return cfg, final


def _probe_config(model_cls: Any, model_name: str, model_cfg: Any, protocol: Protocol, overrides: Overrides) -> Any:
    from reid_bench.probe import ProbeConfig

    if protocol.mode != "closed-set":
        if overrides.probe:
            raise ConfigError(f"--set probe.* applies to closed-set protocols only; this protocol is {protocol.mode}")
        return None
    try:
        probe_base = dataclasses.replace(ProbeConfig(), **model_cls.probe_defaults(model_cfg, protocol))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model {model_name!r}: its probe: {exc}") from None
    return apply_overrides(probe_base, overrides.probe, "the closed-set probe", prefix="probe.")


def _scoring(protocol: Protocol, protocol_name: str, overrides: Overrides) -> tuple[Any, dict[str, Any]]:
    """The run's retrieval scoring and where it departs from the protocol's declaration."""
    if overrides.eval and protocol.mode != "retrieval":
        raise ConfigError(f"--set eval.* applies to retrieval protocols only; this protocol is {protocol.mode}")
    scoring = apply_overrides(protocol.scoring, overrides.eval, f"protocol {protocol_name!r}'s scoring", prefix="eval.")
    declared = config_dict(protocol.scoring)
    return scoring, {k: v for k, v in config_dict(scoring).items() if declared.get(k) != v}


def _data_options(registry: Registry, protocol: Protocol, protocol_name: str,
                  overrides: Overrides) -> dict[str, dict[str, Any]]:
    data: dict[str, dict[str, Any]] = {}
    known: set[str] = set()
    fixed = protocol.fixed_data_options()
    clash = sorted(set(overrides.data) & set(fixed))
    if clash:
        raise ConfigError(
            f"--set data.{clash[0]}: protocol {protocol_name!r} fixes this option ({clash[0]}={fixed[clash[0]]!r}); "
            "define another protocol to change it"
        )
    for name in protocol.datasets:
        ds_cls = registry.dataset(name)
        if ds_cls.options_class is None:
            data[name] = {}
            continue
        fields = {f.name for f in dataclasses.fields(ds_cls.options_class)}
        known |= fields
        mine = {k: v for k, v in overrides.data.items() if k in fields}
        start = dataclasses.replace(ds_cls.options_class(),
                                    **{k: v for k, v in protocol.data_defaults.items() if k in fields})
        opts = apply_overrides(start, mine, f"dataset {name!r}", prefix="data.")
        data[name] = config_dict(opts)
        data[name].update(getattr(protocol, "data_options", {}) if getattr(protocol, "dataset", None) == name else {})
    unknown = sorted(set(overrides.data) - known)
    if unknown:
        raise ConfigError(
            f"unknown --set key 'data.{unknown[0]}' for the datasets of this protocol "
            f"({', '.join(protocol.datasets) or 'none'}); keys: {', '.join(sorted(known)) or 'none'}"
        )
    return data


class HarnessData(DataAccess):
    """Loads datasets by name through the registry, through the parsed-data cache for on-disk
    datasets. The protocol's own options win over ``data.*`` because they define the benchmark
    (a domain, a subset); the run's overrides fill the rest."""

    def __init__(self, registry: Registry, data_root: str | None, data_options: dict[str, dict[str, Any]],
                 cache_dir: str | Path | None = "default"):
        from reid_bench.cache import default_cache_dir

        self.registry = registry
        self.data_root = Path(data_root) if data_root else None
        self.data_options = data_options
        self.cache_dir = default_cache_dir() if cache_dir == "default" else (Path(cache_dir) if cache_dir else None)
        self._cache: dict[str, list[Record]] = {}
        self.checksums: dict[str, str] = {}
        self.drops: dict[str, dict[str, int]] = {}
        self.cache_hits: dict[str, bool] = {}

    def dataset(self, dataset: str, **options: Any) -> Any:
        """An instance of the dataset plugin with the merged options and its root folder."""
        ds_cls = self.registry.dataset(dataset)
        base = dict(self.data_options.get(dataset, {}))
        base.update(options)
        opts = None
        if ds_cls.options_class is not None:
            opts = ds_cls.options_class(**{k: tuple(v) if isinstance(v, list) else v for k, v in base.items()})
        return ds_cls(root=dataset_root(ds_cls, self.data_root, dataset), options=opts)

    def load(self, dataset: str, **options: Any) -> list[Record]:
        import json

        from reid_bench.datasets import FileDataset

        key = dataset + json.dumps({**self.data_options.get(dataset, {}), **options}, sort_keys=True, default=str)
        if key in self._cache:
            return self._cache[key]
        ds = self.dataset(dataset, **options)
        label = _data_label(dataset, options)
        if isinstance(ds, FileDataset) and self.cache_dir is not None:
            records = self._load_file_dataset(ds, dataset, label)  # records the checksum itself
        else:
            records = ds.load()
            if isinstance(ds, FileDataset):
                self.drops[label] = ds.drop_report()
            self.checksums[label] = ds.checksum()
        self._cache[key] = records
        return records

    def _load_file_dataset(self, ds: Any, dataset: str, label: str) -> list[Record]:
        from reid_bench.cache import cache_path, load_records, save_records
        from reid_bench.config import fingerprint

        ds.require_root()
        opts = config_dict(ds.options) if dataclasses.is_dataclass(ds.options) else {}
        self.checksums[label] = ds.checksum()
        key = f"{self.checksums[label]}-{fingerprint(opts)}"
        path = cache_path(self.cache_dir, dataset, ds.loader_version, key)
        cached = load_records(path)
        if cached is not None:
            records, extra = cached
            self.drops[label] = extra.get("drops", {})
            self.cache_hits[label] = True
            return records
        records = ds.load()
        self.drops[label] = ds.drop_report()
        self.cache_hits[label] = False
        try:
            save_records(path, records, {"drops": self.drops[label]})
        except OSError as exc:  # a read-only cache folder must not fail the run
            import logging

            logging.getLogger(__name__).warning("could not write the dataset cache %s (%s)", path,
                                                exc.strerror or exc)
        return records


def dataset_root(ds_cls: Any, data_root: Path | None, name: str) -> Path | None:
    """``<data-root>/<name>``, or an alias folder of the dataset's when only that one exists."""
    if data_root is None:
        return None
    root = data_root / name
    if not root.exists():
        for alias in getattr(ds_cls, "folder_aliases", ()):
            if (data_root / alias).is_dir():
                return data_root / alias
    return root


def _data_label(dataset: str, options: dict[str, Any]) -> str:
    """A readable key for one dataset configuration, valid as an MLflow tag name."""
    import re

    def text(v: Any) -> str:
        return "+".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)

    raw = "/".join([dataset] + [f"{k}-{text(v)}" for k, v in sorted(options.items())])
    return re.sub(r"[^A-Za-z0-9_\-. :/+]", "_", raw).replace("+", "_")[:200]


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def pick_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {requested!r} requested but CUDA is not available")
    return requested


def _check_features(feats: np.ndarray, split: SampleSet, model: str) -> np.ndarray:
    feats = np.asarray(feats)
    if feats.ndim != 2 or feats.shape[0] != len(split):
        raise ValueError(f"model {model!r}: embed() returned shape {feats.shape}, expected ({len(split)}, D)")
    if not np.isfinite(feats).all():
        raise ValueError(f"model {model!r}: embed() returned non-finite features")
    return feats.astype(np.float32, copy=False)


def evaluate(protocol: Protocol, fold: FoldData, model: Model, model_name: str, probe_cfg: Any, seed: int, device: str,
             scoring: Any = None) -> dict[str, Any]:
    """The protocol's evaluation mode applied to a fitted model: metrics plus the CMC curve.
    Retrieval ranks as ``scoring`` says (default: the protocol's declared scoring)."""
    from reid_bench.modes import evaluator

    def embed(split: SampleSet) -> np.ndarray:
        return _check_features(model.embed(split), split, model_name)

    return evaluator(protocol.mode).evaluate(protocol, fold, embed, probe_cfg, seed, device,
                                             scoring or getattr(protocol, "scoring", None))


class TrialSink:
    """Where a trial's events go. The in-process runner keeps checkpoints in a local folder;
    under Ray they go through Ray Tune's checkpoints (``runner._RaySink``)."""

    def progress(self, payload: dict[str, Any]) -> None:
        """Per-epoch metrics and phase changes, for every fold the trial evaluates."""

    def checkpoint(self, state: dict[str, Any], meta: dict[str, Any]) -> str | None:
        """Keep a checkpoint (``meta["kind"]``: "training" or "model"); returns where it went."""
        return None

    def result(self, result: dict[str, Any]) -> None:
        """One fold's final result."""


class LocalSink(TrialSink):
    """Checkpoints in ``<root>/checkpoint_<epoch>`` (the newest ``keep``) and ``<root>/model``;
    ``on_checkpoint(kind, path)`` and ``on_result`` tell the caller."""

    def __init__(self, root: Path | None, keep: int = 2, report: Callable[[dict[str, Any]], None] | None = None,
                 on_checkpoint: Callable[[str, str], None] | None = None,
                 on_result: Callable[[dict[str, Any]], None] | None = None):
        from reid_bench.checkpoints import CheckpointFolder

        self.folder = CheckpointFolder(root, keep) if root is not None else None
        self._report = report or (lambda payload: None)
        self._on_checkpoint = on_checkpoint or (lambda kind, path: None)
        self._on_result = on_result or (lambda result: None)

    def progress(self, payload: dict[str, Any]) -> None:
        self._report(payload)

    def checkpoint(self, state: dict[str, Any], meta: dict[str, Any]) -> str | None:
        from reid_bench.checkpoints import write_checkpoint

        if self.folder is None:
            return None
        if meta["kind"] == "model":
            path = write_checkpoint(self.folder.root / "model", state, meta)
        else:
            path = self.folder.save(int(meta["epoch"]), state, meta)
        self._on_checkpoint(meta["kind"], str(path))
        return str(path)

    def result(self, result: dict[str, Any]) -> None:
        self._on_result(result)


def trial_folder(spec: TrialSpec) -> Path:
    """Where an in-process trial keeps its checkpoints: one folder per (folds, seed)."""
    work_dir = Path(spec.work_dir or os.getcwd())
    return work_dir / "trials" / spec.model / spec.protocol / "+".join(spec.folds) / f"seed{spec.seed}"


def execute_trial(
    spec: TrialSpec,
    report: Callable[[dict[str, Any]], None] | None = None,
    registry: Registry | None = None,
) -> dict[str, Any]:
    """Run a one-fold trial and return its result (checkpoints in ``trial_folder(spec)`` when the
    spec names a work folder; none otherwise). ``report`` receives intermediate results
    (per-epoch metrics and progress) as plain dicts."""
    sink = LocalSink(trial_folder(spec) if spec.work_dir else None, spec.checkpoint_keep, report)
    return execute_fit(spec, sink, registry)[0]


def execute_fit(spec: TrialSpec, sink: TrialSink, registry: Registry | None = None,
                resume: tuple[dict[str, Any], dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Fit one model on the training set that ``spec.folds`` share and evaluate it on each fold:
    the results, one per fold, in ``spec.folds`` order (each also handed to ``sink.result``).

    ``resume`` (a checkpoint's state and record; else ``spec.resume_from`` is read) continues an
    earlier fit of this trial. With ``spec.threads`` torch runs that many threads during the
    trial, under Ray or in process alike (more threads than the CPUs Ray gave a trial
    oversubscribe the cores); the caller's setting is restored."""
    if not spec.threads:
        return _execute_fit(spec, sink, registry, resume)
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(spec.threads)
    try:
        return _execute_fit(spec, sink, registry, resume)
    finally:
        torch.set_num_threads(before)


@dataclass
class _Setup:
    """A trial's parts once its request is resolved and its folds are built."""

    model_cls: Any
    protocol: Protocol
    resolved: ResolvedConfig
    device: str
    data: "HarnessData"
    folds: dict[str, FoldData]
    data_spec: DataSpec
    t0: float
    t_data: float
    watcher: Any = None


def _execute_fit(spec: TrialSpec, sink: TrialSink, registry: Registry | None,
                 resume: tuple[dict[str, Any], dict[str, Any]] | None) -> list[dict[str, Any]]:
    from reid_bench.checkpoints import rng_state, set_rng_state

    registry = registry or get_registry()
    setup = _prepare(spec, registry, sink)
    if resume is None and spec.resume_from:
        resume = read_resume_point(spec.resume_from)
    model, resumed = _fit(spec, setup, sink, registry, resume)
    t_fit = time.perf_counter()
    after_fit = rng_state()
    if spec.save_model and model.model_state() is not None:
        sink.checkpoint({"kind": "model", "model": model.model_state(), "rng": after_fit},
                        checkpoint_meta(spec, setup, registry, "model", _epochs_of(model)))
    results = []
    for fold_name, fold in setup.folds.items():
        set_rng_state(after_fit)  # each fold is scored as a trial of its own would score it
        sink.progress({"phase": "eval", "progress": 1.0, "fold": fold_name})
        t_eval = time.perf_counter()
        evaluation = evaluate(setup.protocol, fold, model, spec.model, setup.resolved.probe, spec.seed, setup.device,
                              setup.resolved.scoring)
        result = _result(spec, setup, fold_name, fold, model, evaluation,
                         timings={"data_s": setup.t_data - setup.t0, "fit_s": t_fit - setup.t_data,
                                  "eval_s": time.perf_counter() - t_eval,
                                  "trial_s": time.perf_counter() - t_eval + t_fit - setup.t0})
        result["resumed_from"] = resumed
        if spec.report_every:
            result["test_selected"] = setup.watcher.best.get(fold_name)
        sink.result(result)
        results.append(result)
    return results


def check_modality(model: str, model_cls: Any, protocol: str, protocol_cls: Any) -> None:
    """A model reads one kind of data (skeletons or point clouds); the protocol must serve it.
    Checked by ``validate`` for run and tune, and again here where a trial resolves its request."""
    if model_cls.modality != protocol_cls.modality:
        raise ConfigError(f"model {model!r} works on {model_cls.modality} data; protocol {protocol!r} is "
                          f"{protocol_cls.modality}")


def _prepare(spec: TrialSpec, registry: Registry, sink: TrialSink) -> _Setup:
    """Resolve the request and build every fold; folds that share a trial must share their
    training split exactly (the protocol says they do; the data must agree)."""
    from reid_bench.checkpoints import rng_state, set_rng_state

    t0 = time.perf_counter()
    model_cls = registry.model(spec.model)
    protocol = registry.protocol(spec.protocol)()
    check_modality(spec.model, model_cls, spec.protocol, protocol)
    overrides = Overrides(**{k: dict(v) for k, v in spec.overrides.items()})
    resolved = resolve_config(spec.model, spec.protocol, overrides, registry)
    device = pick_device(spec.device)
    sink.progress({"phase": "data", "progress": 0.0})
    data = HarnessData(registry, spec.data_root, resolved.data, cache_dir=spec.cache_dir)
    folds: dict[str, FoldData] = {}
    after_first = None
    for name in spec.folds:
        seed_everything(spec.seed)  # each fold built as a trial of its own would build it
        folds[name] = _build_fold(protocol, spec, name, data)
        after_first = after_first or rng_state()
        if name != spec.fold and training_fingerprint(folds[name].train) != training_fingerprint(folds[spec.fold].train):
            raise ValueError(f"protocol {spec.protocol!r}: folds {spec.fold!r} and {name!r} are declared to share "
                             "a training set, but their training splits differ")
    set_rng_state(after_first)
    train = folds[spec.fold].train
    data_spec = DataSpec(
        modality=protocol.modality,
        num_classes=train.num_classes,
        layout=train.layout,
        window=train.data.shape[1] if protocol.modality == "skeleton" else None,
        num_points=train.data.shape[1] if protocol.modality == "pointcloud" else None,
    )
    return _Setup(model_cls, protocol, resolved, device, data, folds, data_spec, t0, time.perf_counter())


def _build_fold(protocol: Protocol, spec: TrialSpec, fold: str, data: "HarnessData") -> FoldData:
    if spec.split == "validation":
        return protocol.validation_fold(fold, spec.seed, data)
    if spec.split == "test":
        return protocol.build_fold(fold, spec.seed, data)
    raise ValueError(f"unknown split {spec.split!r}; expected 'test' or 'validation'")


def training_fingerprint(train: SampleSet) -> str:
    """Identity of a training split: its windows or clouds, labels, people and layout."""
    import hashlib

    digest = hashlib.sha256()
    for arr in (train.data, train.labels, train.person, train.group):
        arr = np.ascontiguousarray(arr)
        digest.update(str((arr.dtype, arr.shape)).encode())
        digest.update(arr.tobytes())
    digest.update(str(getattr(train.layout, "name", None)).encode())
    return digest.hexdigest()


class BestTestEpochs:
    """The releases' way of reporting, recorded beside the harness's: every ``every`` epochs
    (and after the last) each fold of the trial is scored on its test split and the epoch with
    the best main score is kept per fold (SimMC.py lines 649-673, TranSG.py 863-898: they report
    that epoch). Nothing is selected by it: the random state and every module's train/eval mode
    are put back after each look, so the trial's own result is the one an unwatched fit gives."""

    def __init__(self, every: int, setup: _Setup, spec: TrialSpec):
        self.every, self.setup, self.spec = every, setup, spec
        self.best: dict[str, dict[str, Any]] = {}

    def due(self, epoch: int, epochs: int) -> bool:
        return bool(self.every) and ((epoch + 1) % self.every == 0 or epoch + 1 == epochs)

    def look(self, model: Model, epoch: int) -> None:
        from reid_bench.checkpoints import rng_state, set_rng_state

        setup, before = self.setup, rng_state()
        modes = [(m, m.training) for name in getattr(model, "model_attributes", ())
                 for m in (getattr(getattr(model, name, None), "modules", lambda: [])())]
        sign = 1.0 if setup.protocol.higher_is_better else -1.0
        try:
            for fold_name, fold in setup.folds.items():
                scores = evaluate(setup.protocol, fold, model, self.spec.model, setup.resolved.probe, self.spec.seed,
                                  setup.device, setup.resolved.scoring)["metrics"]
                main = sign * float(scores[setup.protocol.main_score])
                kept = self.best.get(fold_name)
                if kept is None or main > sign * kept["metrics"][setup.protocol.main_score]:
                    self.best[fold_name] = {"epoch": int(epoch), "metrics": {k: float(v) for k, v in scores.items()}}
        finally:
            for module, training in modes:
                module.train(training)
            set_rng_state(before)


def _fit(spec: TrialSpec, setup: _Setup, sink: TrialSink, registry: Registry,
         resume: tuple[dict[str, Any], dict[str, Any]] | None) -> tuple[Model, dict[str, Any] | None]:
    """The model of this trial, fitted, or restored from ``resume``: a model checkpoint skips the
    fit; a training checkpoint continues it after its epoch."""
    from reid_bench.checkpoints import CheckpointPolicy, set_rng_state

    first = setup.folds[spec.fold]
    holder: dict[str, Model] = {}
    policy = CheckpointPolicy(spec.checkpoint_epochs, spec.checkpoint_minutes, spec.checkpoint_keep)
    last = {"epoch": None, "time": time.monotonic()}

    def on_epoch(epoch: int, **values: Any) -> None:
        payload = {"phase": "fit", "epoch": int(epoch), "progress": state["progress"]}
        payload.update({k: float(v) for k, v in values.items()})
        if spec.split == "validation" and "model" in holder:
            # Per-epoch validation score for early stopping (ASHA). The closed-set probe is a kNN
            # here: cheap enough to run every epoch; the final score uses the configured probe.
            quick = _quick_probe(setup.resolved.probe)
            scores = evaluate(setup.protocol, first, holder["model"], spec.model, quick, spec.seed, setup.device,
                              setup.resolved.scoring)
            payload["val_score"] = float(scores["metrics"][setup.protocol.main_score])
        sink.progress(payload)

    state = {"progress": 0.0}

    def on_progress(fraction: float, message: str = "") -> None:
        state["progress"] = float(min(max(fraction, 0.0), 1.0))
        if message:  # a model says where it is (once an epoch): log mode prints it with an ETA
            sink.progress({"phase": "fit", "progress": state["progress"], "message": str(message)})

    def epoch_done(model: Model, epoch: int, epochs: int) -> None:
        if watcher.due(epoch, epochs):
            watcher.look(model, epoch)
        now = time.monotonic()
        if epoch + 1 < epochs and not policy.due(epoch, last["epoch"], last["time"], now):
            return
        state = dict(model.training_state(epoch), harness={"best_test_epochs": watcher.best})
        sink.checkpoint(state, checkpoint_meta(spec, setup, registry, "training", epochs, epoch))
        last["epoch"], last["time"] = epoch, time.monotonic()

    watcher = setup.watcher = BestTestEpochs(spec.report_every, setup, spec)

    ckpt_dir = trial_folder(spec)
    ctx = TrialContext(device=setup.device, seed=spec.seed, checkpoint_dir=ckpt_dir, report=on_epoch,
                       progress=on_progress, validation=first.validation, epoch_done=epoch_done)
    sink.progress({"phase": "fit", "progress": 0.0})
    model = setup.model_cls(setup.resolved.model_for(spec.fold), setup.data_spec)
    holder["model"] = model
    resumed = None
    if resume is not None:
        saved, meta = resume
        check_resume_point(meta, spec, setup)
        resumed = {"kind": meta["kind"], "epoch": meta.get("epoch"), "location": meta.get("location", "")}
        if meta["kind"] == "model":
            model.load_model_state(saved["model"])
            set_rng_state(saved["rng"])
            return model, resumed
        if model.resumable:
            ctx.resume = saved
            watcher.best = dict((saved.get("harness") or {}).get("best_test_epochs") or {})
            sink.progress({"phase": "fit", "progress": (int(meta["epoch"]) + 1) / max(1, int(meta["epochs"])),
                           "message": f"resuming after epoch {int(meta['epoch']) + 1} of {meta['epochs']}"})
        else:
            resumed = None
    model.fit(first.train, ctx)
    return model, resumed


def _result(spec: TrialSpec, setup: _Setup, fold_name: str, fold: FoldData, model: Model,
            evaluation: dict[str, Any], timings: dict[str, float]) -> dict[str, Any]:
    return {
        "split": spec.split,
        "val_score": float(evaluation["metrics"][setup.protocol.main_score]) if spec.split == "validation" else None,
        "model": spec.model,
        "protocol": spec.protocol,
        "fold": fold_name,
        "folds_fitted_together": list(spec.folds),
        "seed": spec.seed,
        "metrics": evaluation["metrics"],
        "cmc": evaluation["cmc"],
        "per_query": evaluation["per_query"],
        "num_parameters": int(model.num_parameters()),
        "fold_info": fold.info,
        "dataset_checksums": setup.data.checksums,
        "dataset_drops": setup.data.drops,
        "config": setup.resolved.as_dict(),
        "run_settings": setup.resolved.run_settings,
        "device": setup.device,
        # what torch ran with, so an in-process trial can be compared with a Ray one
        "torch_threads": _torch_threads(),
        "timings": timings,
    }


def checkpoint_meta(spec: TrialSpec, setup: _Setup, registry: Registry, kind: str, epochs: int,
                    epoch: int | None = None) -> dict[str, Any]:
    """What a checkpoint is: enough to refuse it where it does not belong, and to label a row
    evaluated from it."""
    import socket

    import reid_bench

    layout = setup.data_spec.layout
    entry = registry.entry("models", spec.model)
    return {
        "kind": kind, "model": spec.model, "model_version": str(setup.model_cls.version),
        "plugin": entry.label, "reid_bench": reid_bench.__version__, "torch": _torch_version(),
        "protocol": spec.protocol, "protocol_version": str(setup.protocol.version),
        "folds": list(spec.folds), "seed": spec.seed, "split": spec.split,
        "config": setup.resolved.as_dict(), "config_fingerprint": setup.resolved.fingerprint,
        "data_spec": {"modality": setup.data_spec.modality, "num_classes": setup.data_spec.num_classes,
                      "layout": getattr(layout, "name", None),
                      "joints": None if layout is None else int(layout.num_joints),
                      "window": setup.data_spec.window, "num_points": setup.data_spec.num_points},
        "epoch": (epochs - 1) if epoch is None else int(epoch), "epochs": int(epochs),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": socket.gethostname(), "pid": os.getpid(),
    }


def read_resume_point(location: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(state, record) of the checkpoint at ``location``: a local folder, or a storage URI that
    Ray Tune wrote (s3://, gs://, ...)."""
    from reid_bench.checkpoints import read_checkpoint

    if "://" in location and not location.startswith("file://"):
        from ray.train import Checkpoint

        with Checkpoint(location).as_directory() as folder:
            state, meta = read_checkpoint(Path(folder))
    else:
        state, meta = read_checkpoint(Path(location.removeprefix("file://")))
    meta["location"] = location
    return state, meta


def check_resume_point(meta: dict[str, Any], spec: TrialSpec, setup: _Setup) -> None:
    """A trial continues only its own fit: the same model, configuration, protocol, folds, seed."""
    mine = {"model": spec.model, "config_fingerprint": setup.resolved.fingerprint, "protocol": spec.protocol,
            "folds": list(spec.folds), "seed": spec.seed, "split": spec.split}
    for key, value in mine.items():
        if meta.get(key) != value:
            raise ValueError(f"checkpoint {meta.get('location', '')}: {key} is {meta.get(key)!r}, this trial's is {value!r}")


def _epochs_of(model: Model) -> int:
    epochs = getattr(model, "num_epochs", None)
    return int(epochs()) if callable(epochs) else 0


def _torch_version() -> str:
    import torch

    return torch.__version__


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _quick_probe(probe: Any) -> Any:
    if probe is None:
        return None
    return dataclasses.replace(probe, kind="knn", k=max(1, getattr(probe, "k", 1)))


def format_failure(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
