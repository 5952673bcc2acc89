"""``reid-bench eval``: score a saved model on a protocol without training it.

The checkpoint (a folder ``run`` wrote, or ``runs:/<run id>/model`` in MLflow) says which model,
configuration, layout and data shape it holds; nothing loads unless every key and shape of the
saved state matches the model built from that record, and the protocol's skeletons have the
layout and window it was trained on. The evaluation is recorded like a run (a parent run and one
child per fold, tagged ``reid_bench.evaluation_only``) under a configuration fingerprint of its
own, so a board shows it as its own row, labelled with the checkpoint and what it was trained on.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reid_bench.checkpoints import CheckpointError, read_checkpoint, set_rng_state
from reid_bench.registry import get_registry
from reid_bench.tracking import Tag


@dataclass
class LoadedCheckpoint:
    """A checkpoint read and checked: its state, its record and where it came from."""

    state: dict[str, Any]
    meta: dict[str, Any]
    source: str

    @property
    def digest(self) -> str:
        return str(self.meta["sha256"])[:12]

    @property
    def trained_on(self) -> str:
        return f"{self.meta['protocol']}/{'+'.join(self.meta['folds'])}/seed{self.meta['seed']}"


def load_checkpoint(source: str, tracking_uri: str | None = None) -> LoadedCheckpoint:
    """A checkpoint folder (or a file in one), or an MLflow artifact URI (``runs:/<id>`` means
    ``runs:/<id>/model``), read with its hash checked: CheckpointError naming what is wrong."""
    if ":/" in source and not Path(source).exists():
        return _from_mlflow(source, tracking_uri)
    path = Path(source).expanduser()
    if not path.exists():
        raise CheckpointError(f"--checkpoint {source}: no such file or folder")
    folder = path.parent if path.is_file() else path
    state, meta = read_checkpoint(folder)
    return LoadedCheckpoint(state, meta, str(folder.resolve()))


def _from_mlflow(uri: str, tracking_uri: str | None) -> LoadedCheckpoint:
    import mlflow

    from reid_bench import tracking

    if uri.startswith("runs:/") and uri.rstrip("/").count("/") == 1:
        uri = uri.rstrip("/") + "/model"
    tracking_uri = tracking_uri or tracking.default_tracking_uri()
    tracking.check_uri(tracking_uri, must_exist=True)
    tmp = tempfile.mkdtemp(prefix="reid-bench-eval-")
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp, tracking_uri=tracking_uri)
    except Exception as exc:  # MLflow raises many kinds; one line with the URI
        raise CheckpointError(f"--checkpoint {uri}: cannot be fetched from {tracking_uri} "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    state, meta = read_checkpoint(Path(local))
    return LoadedCheckpoint(state, meta, uri)


def model_config(model_cls: Any, values: dict[str, Any]) -> Any:
    """The checkpoint's configuration as the model's config dataclass (run settings at their
    defaults); a field the installed plugin does not have is refused."""
    base = model_cls.config_class()
    names = {f.name for f in dataclasses.fields(base)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise CheckpointError(f"checkpoint config: {unknown[0]!r} is not a field of {model_cls.__name__}'s config "
                              "(the installed plugin differs from the one that saved it)")
    hints = typing.get_type_hints(type(base))
    fixed = {k: tuple(v) if isinstance(v, list) and _is_tuple(hints.get(k)) else v for k, v in values.items()}
    return dataclasses.replace(base, **fixed)


def _is_tuple(tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _is_tuple(typing.get_args(tp)[0])
    return origin is tuple or tp is tuple


def build_model(ckpt: LoadedCheckpoint) -> Any:
    """The model the checkpoint describes, built from its record and loaded strictly."""
    from reid_bench.samples import DataSpec

    meta, registry = ckpt.meta, get_registry()
    model_cls = registry.model(meta["model"])
    if str(model_cls.version) != str(meta.get("model_version")):
        raise CheckpointError(f"checkpoint {ckpt.source}: saved by {meta['model']} version {meta.get('model_version')}; "
                              f"the installed plugin is version {model_cls.version}")
    shape = meta["data_spec"]
    layout = registry.layout(shape["layout"]) if shape.get("layout") else None
    spec = DataSpec(shape["modality"], int(shape["num_classes"]), layout, shape.get("window"), shape.get("num_points"))
    values = dict(meta["config"]["model"])
    values.update(meta["config"].get("folds", {}).get(meta["folds"][0], {}))  # the fold's release values
    model = model_cls(model_config(model_cls, values), spec)
    if "model" not in ckpt.state:
        raise CheckpointError(f"checkpoint {ckpt.source}: holds no model state")
    try:
        model.load_model_state(ckpt.state["model"])
    except NotImplementedError as exc:
        raise CheckpointError(str(exc)) from None
    if ckpt.state.get("rng"):
        set_rng_state(ckpt.state["rng"])
    return model


def check_fits(ckpt: LoadedCheckpoint, protocol: Any, fold_name: str, fold: Any) -> None:
    """The protocol's data must have the shape the model was trained on: modality, skeleton
    layout (joints and their order) and window length."""
    shape = ckpt.meta["data_spec"]
    if protocol.modality != shape["modality"]:
        raise CheckpointError(f"checkpoint of {ckpt.meta['model']} holds a {shape['modality']} model; protocol "
                              f"{type(protocol).__name__} is {protocol.modality}")
    if protocol.modality != "skeleton":
        return
    layout = getattr(fold.train.layout, "name", None)
    if layout != shape.get("layout"):
        raise CheckpointError(f"fold {fold_name!r}: the protocol's skeletons use layout {layout!r}; the checkpoint was "
                              f"trained on {shape.get('layout')!r}")
    window = fold.train.data.shape[1]
    if shape.get("window") is not None and window != shape["window"]:
        raise CheckpointError(f"fold {fold_name!r}: the protocol cuts {window}-frame windows; the checkpoint was "
                              f"trained on {shape['window']}-frame windows")


@dataclass(frozen=True)
class EvalRequest:
    checkpoint: str
    protocol: str
    folds: tuple[str, ...] | None = None
    data_root: str | None = None
    tracking_uri: str | None = None
    device: str = "auto"
    cache_dir: str | None = "default"


def evaluate_checkpoint(request: EvalRequest, show_progress: bool = True) -> Any:
    """Load, check, score every fold, record: an ``InvocationResult`` like ``run``'s. Everything is
    checked (the checkpoint, the protocol, its data and their fit) before the store is written."""
    from reid_bench import tracking
    from reid_bench.runner import check_data, check_device, check_folds

    registry = get_registry()
    ckpt = load_checkpoint(request.checkpoint, request.tracking_uri)
    protocol_cls = registry.protocol(request.protocol)
    folds = check_folds(request.protocol, protocol_cls, request.folds)
    check_device(request.device, use_ray=False)
    model = build_model(ckpt)
    resolved = _resolved(ckpt, model, request.protocol)
    check_data(protocol_cls, resolved, request.data_root, request.cache_dir)
    built = _build_folds(ckpt, protocol_cls(), resolved, folds, request)
    uri = request.tracking_uri or tracking.default_tracking_uri()
    tracking.check_uri(uri)
    return _record(ckpt, model, resolved, built, request, uri, show_progress)


def _resolved(ckpt: LoadedCheckpoint, model: Any, protocol_name: str) -> Any:
    """The evaluation's configuration: the checkpoint's model config, the probe the model's
    recipe uses on this protocol, and the data options it was trained with on its own protocol
    (another protocol's defaults when it is scored across datasets)."""
    from reid_bench.config import Overrides
    from reid_bench.trial import resolve_config

    base = resolve_config(ckpt.meta["model"], protocol_name, Overrides())
    probe = base.probe
    if probe is not None:
        protocol = get_registry().protocol(protocol_name)()
        probe = dataclasses.replace(type(probe)(), **type(model).probe_defaults(model.config, protocol))
    data = base.data
    if ckpt.meta["protocol"] == protocol_name and set(ckpt.meta["config"].get("data", {})) == set(data):
        data = ckpt.meta["config"]["data"]
    return dataclasses.replace(base, model=model.config, probe=probe, data=data)


def _build_folds(ckpt: LoadedCheckpoint, protocol: Any, resolved: Any, folds: list[str],
                 request: EvalRequest) -> dict[str, Any]:
    from reid_bench.trial import HarnessData, seed_everything

    data = HarnessData(get_registry(), str(Path(request.data_root).resolve()) if request.data_root else None,
                       resolved.data, cache_dir=request.cache_dir)
    built = {}
    for name in folds:
        seed_everything(int(ckpt.meta["seed"]))
        built[name] = protocol.build_fold(name, int(ckpt.meta["seed"]), data)
        check_fits(ckpt, protocol, name, built[name])
    built["__data__"] = data
    return built


def _record(ckpt: LoadedCheckpoint, model: Any, resolved: Any, built: dict[str, Any], request: EvalRequest, uri: str,
            show_progress: bool) -> Any:
    """Open the store and score each fold as an evaluation-only trial."""
    from reid_bench import tracking
    from reid_bench.config import fingerprint
    from reid_bench.runner import Coordinator, InvocationResult, LiveView, TrialState, summarise
    from reid_bench.trial import TrialSpec, pick_device

    data = built.pop("__data__")
    meta, protocol_cls = ckpt.meta, get_registry().protocol(request.protocol)
    seed, name = int(meta["seed"]), meta["model"]
    config_id = fingerprint({"config": resolved.as_dict(), "checkpoint": meta["sha256"]})
    label = {"checkpoint": ckpt.digest, "trained on": ckpt.trained_on}
    tags = {Tag.MODEL: name, Tag.PROTOCOL: request.protocol,
            Tag.PROTOCOL_VERSION: str(protocol_cls.version), Tag.CONFIG_FINGERPRINT: config_id,
            Tag.MODE: protocol_cls.mode, Tag.MAIN_SCORE: protocol_cls.main_score,
            Tag.OVERRIDES: "{}", Tag.CONFIG_DIFF: json.dumps(label, sort_keys=True),
            Tag.CONFIG_LABEL: json.dumps(label, sort_keys=True), Tag.EVALUATION_ONLY: "true",
            Tag.EVALUATED_FROM: json.dumps({"source": ckpt.source, "sha256": meta["sha256"],
                                                     "trained_on": ckpt.trained_on}, sort_keys=True),
            **tracking.environment_tags()}
    params = {"model": name, "protocol": request.protocol, "protocol_version": str(protocol_cls.version),
              "checkpoint": ckpt.source, **tracking.flatten("", resolved.as_dict())}
    client, experiment_id = tracking.connect(uri, create=True)
    recorder = tracking.Recorder(client, experiment_id, uri)
    keys = [f"{fold}/seed{seed}" for fold in built]
    parent_id = recorder.start_parent(f"eval {name}@{request.protocol}", dict(params, folds=json.dumps(list(built))),
                                      dict(tags, **{Tag.EXPECTED_TRIALS: json.dumps(keys),
                                                    Tag.FOLDS: json.dumps(list(built))}))
    trials = {f"{fold}/seed{seed}": TrialState(TrialSpec(model=name, protocol=request.protocol, fold=fold, seed=seed))
              for fold in built}
    view = LiveView(f"eval {name} ({ckpt.digest}) on {request.protocol}", list(trials.values()),
                    protocol_cls.main_score, enabled=show_progress)
    events = Coordinator(recorder, view, trials, params, tags)
    events.trial_kind = "trial"
    t0 = time.perf_counter()
    status = "FAILED"
    try:
        with view:
            _score(events, model, resolved, built, request, data, seed, pick_device(request.device))
        status = "FINISHED" if all(t.status == "FINISHED" for t in trials.values()) else "FAILED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        summary = summarise(list(trials.values()), protocol_cls().metrics)
        try:
            recorder.end_parent(status, summary, {"time/wall_s": time.perf_counter() - t0})
        finally:
            recorder.terminate_open("KILLED" if status == "KILLED" else "FAILED")
    return InvocationResult(parent_id, experiment_id, uri, list(trials.values()), summary, time.perf_counter() - t0,
                            {"wall_s": time.perf_counter() - t0})


def _score(events: Any, model: Any, resolved: Any, built: dict[str, Any], request: EvalRequest, data: Any, seed: int,
           device: str) -> None:
    from reid_bench.checkpoints import rng_state
    from reid_bench.trial import evaluate, format_failure

    protocol = get_registry().protocol(request.protocol)()
    model.device = device
    for part in (getattr(model, name, None) for name in getattr(model, "model_attributes", ())):
        if hasattr(part, "to"):
            part.to(device)
    after_load = rng_state()
    for fold_name, fold in built.items():
        key = f"{fold_name}/seed{seed}"
        events.started(key)
        set_rng_state(after_load)
        t0 = time.perf_counter()
        try:
            evaluation = evaluate(protocol, fold, model, events.trials[key].spec.model, resolved.probe, seed, device)
        except Exception as exc:
            events.failed(key, format_failure(exc))
            continue
        events.finished(key, {
            "split": "test", "val_score": None, "model": events.trials[key].spec.model, "protocol": request.protocol,
            "fold": fold_name, "seed": seed, "metrics": evaluation["metrics"], "cmc": evaluation["cmc"],
            "per_query": evaluation["per_query"], "num_parameters": int(model.num_parameters()),
            "fold_info": fold.info, "dataset_checksums": data.checksums, "dataset_drops": data.drops,
            "config": resolved.as_dict(), "device": device, "evaluated_from": request.checkpoint,
            "timings": {"data_s": 0.0, "fit_s": 0.0, "eval_s": time.perf_counter() - t0,
                        "trial_s": time.perf_counter() - t0}})
