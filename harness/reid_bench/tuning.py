"""``reid-bench tune``: search a model's space on a validation split, then run the best config.

Trials of the search train on a protocol fold's training data minus a held-out validation part
(``Protocol.validation_fold``) and report a validation score every epoch, so ASHA can stop weak
ones early. The test split is never touched until the best configuration is run as a normal
``run`` invocation, whose leaderboard rows are marked as tuned with the search budget.
"""

from __future__ import annotations

import dataclasses
import json
import time
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from reid_bench.config import ConfigError, Overrides, readable_value
from reid_bench.registry import get_registry
from reid_bench.runner import (Coordinator, ExecutionOptions, InvocationResult, LiveView, RunError, RunRequest, TrialState,
                               check_data, check_device, check_folder, check_resources, check_storage,
                               check_trial_options, init_ray, run_benchmark)
from reid_bench.trial import LocalSink, TrialSpec, execute_fit, resolve_config

DISTRIBUTIONS = ("uniform", "loguniform", "choice", "randint", "qrandint", "grid")
#: The most configurations one search may draw.
MAX_SAMPLES = 10000


def load_space(path: str | Path) -> dict[str, Any]:
    """A search space from TOML or JSON: ``{field: {distribution: arguments}}``, e.g.
    ``lr = {loguniform = [1e-4, 1e-2]}`` or ``"hidden": {"choice": [64, 128]}``."""
    path = Path(path)
    try:
        text = path.read_text()
        raw = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--space {path}: cannot read: {exc}") from None
    return ray_space(raw, f"--space {path}")


def ray_space(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """Ray Tune distributions from a space declared as data (a model's ``search_space()`` or a
    ``--space`` file): ``{field: {distribution: arguments}}``."""
    from ray import tune

    space: dict[str, Any] = {}
    for key, spec in raw.items():
        if not isinstance(spec, dict) or len(spec) != 1:
            raise ConfigError(f"{where}: {key!r} must be a table with one of {', '.join(DISTRIBUTIONS)}")
        (kind, args), = spec.items()
        try:
            if kind == "uniform":
                space[key] = tune.uniform(*args)
            elif kind == "loguniform":
                space[key] = tune.loguniform(*args)
            elif kind == "choice":
                space[key] = tune.choice(list(args))
            elif kind == "randint":
                space[key] = tune.randint(*args)
            elif kind == "qrandint":
                space[key] = tune.qrandint(*args)
            elif kind == "grid":
                space[key] = tune.grid_search(list(args))
            else:
                raise ConfigError(f"{where}: {key!r} uses unknown distribution {kind!r}; expected one of {', '.join(DISTRIBUTIONS)}")
        except TypeError as exc:
            raise ConfigError(f"{where}: {key!r} {kind}{args!r}: {exc}") from None
    return space


def _as_override(value: Any) -> str:
    return json.dumps(list(value)) if isinstance(value, (list, tuple)) else str(value)


def _tune_trainable(config: dict[str, Any]) -> None:
    """A search trial on a Ray worker: the sampled values become --set overrides of the model."""
    from ray import tune

    base = dict(config["spec"])
    overrides = {k: dict(v) for k, v in base.pop("overrides").items()}
    overrides["model"].update({k: _as_override(v) for k, v in config["params"].items()})
    spec = TrialSpec(**base, overrides=overrides)

    def report(payload: dict[str, Any]) -> None:
        if "val_score" in payload:  # ASHA needs the metric in every result it sees
            tune.report({"val_score": payload["val_score"], "reid_event": "progress", "payload": json.dumps(payload)})

    # A search trial keeps no checkpoint: its folder would be shared by every sample.
    result = execute_fit(dataclasses.replace(spec, save_model=False), LocalSink(None, report=report))[0]
    import ray

    result["node"] = ray.get_runtime_context().get_node_id()
    tune.report({"val_score": result["val_score"], "reid_event": "final", "payload": json.dumps(result, default=str)})


class SearchCoordinator(Coordinator):
    """Search trials are not known in advance: their state is created when Ray starts them."""

    def __init__(self, *args: Any, base_spec: TrialSpec, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.base_spec = base_spec
        self.params: dict[str, dict[str, Any]] = {}

    def started(self, key: str) -> None:
        if key not in self.trials:
            values = ", ".join(f"{k}={readable_value(_as_override(v))}" for k, v in self.params.get(key, {}).items())
            state = TrialState(self.base_spec, label=f"#{len(self.trials) + 1} {values}".strip())
            self.trials[key] = state
            self.view.trials.append(state)
        super().started(key)

    def trial_params(self, key: str) -> dict[str, str]:
        return {f"params.{k}": _as_override(v) for k, v in self.params.get(key, {}).items()}

    def table(self, grid: Any, higher_is_better: bool) -> list[dict[str, Any]]:
        """Every sample of the search, best first: its exact values, how it ended, its validation
        score and the epochs it ran (a sample ASHA stopped early ranks by the score it had then).
        Read from Ray's results, so a resumed search lists the samples of its first part too."""
        rows = []
        for result in grid:
            metrics = result.metrics or {}
            key = str(metrics.get("trial_id", ""))
            state = self.trials.get(key)
            payload = json.loads(metrics.get("payload", "{}") or "{}")
            status = ("FAILED" if result.error is not None else "FINISHED" if metrics.get("reid_event") == "final"
                      else "STOPPED")
            epoch = payload.get("epoch", state.epoch if state else None)  # counted from 0
            score = metrics.get("val_score")
            rows.append({"trial": state.label.split(" ", 1)[0] if state else key, "ray_trial_id": key,
                         "params": dict(result.config.get("params", {})), "status": status,
                         "val_score": None if score is None else float(score),
                         "epochs": None if epoch is None else int(epoch) + 1})
        sign = -1.0 if higher_is_better else 1.0
        return sorted(rows, key=lambda r: (r["val_score"] is None, sign * (r["val_score"] or 0.0)))


@dataclass
class SearchResult:
    search_run_id: str
    best_params: dict[str, Any]
    best_score: float
    trials: int
    invocation: InvocationResult | None
    #: Every sample, best first (``SearchCoordinator.table``).
    samples: list[dict[str, Any]] = dataclasses.field(default_factory=list)


def _max_iterations(config: Any, space: dict[str, Any]) -> int:
    """ASHA's max_t in reported results: one per epoch, plus the final result."""
    if "epochs" in space:
        dist = space["epochs"]
        upper = getattr(dist, "upper", None) or max(getattr(dist, "categories", [0]) or [0])
        return max(1, int(upper)) + 1
    return max(1, int(getattr(config, "epochs", 1))) + 1


def run_search(
    model: str,
    protocol: str,
    overrides: Overrides,
    samples: int = 8,
    scheduler: str = "asha",
    search: str = "random",
    space_file: str | None = None,
    max_concurrent: int | None = None,
    gpus_per_trial: float = 0.0,
    cpus_per_trial: float = 1.0,
    address: str | None = None,
    tracking_uri: str | None = None,
    resume: bool = False,
    seeds: int | None = None,
    data_root: str | None = None,
    device: str = "auto",
    results_dir: str | None = None,
    storage: str | None = None,
    show_progress: bool = True,
    evaluate_best: bool = True,
) -> SearchResult:
    from ray import tune

    from reid_bench import tracking

    registry = get_registry()
    model_cls = registry.model(model)
    protocol_cls = registry.protocol(protocol)
    if model_cls.modality != protocol_cls.modality:
        raise RunError(f"model {model!r} works on {model_cls.modality} data; protocol {protocol!r} is {protocol_cls.modality}")
    if scheduler not in ("asha", "fifo"):
        raise ConfigError(f"--scheduler {scheduler!r}: expected 'asha' or 'fifo'")
    if search not in ("random", "optuna"):
        raise ConfigError(f"--search {search!r}: expected 'random' or 'optuna'")
    if not 1 <= samples <= MAX_SAMPLES:
        raise ConfigError(f"--samples {samples}: must be from 1 to {MAX_SAMPLES}")
    if max_concurrent is not None and max_concurrent < 1:
        raise ConfigError("--max-concurrent must be at least 1")
    check_trial_options(cpus_per_trial, gpus_per_trial, 0)
    check_device(device, use_ray=True)
    resolved = resolve_config(model, protocol, overrides, registry)
    space = load_space(space_file) if space_file else ray_space(model_cls.search_space() or {}, f"model {model!r}")
    if not space:
        raise ConfigError(f"model {model!r} declares no search space; pass one with --space FILE")
    names = {f.name for f in fields(resolved.model)}
    for key in space:
        if key not in names:
            raise ConfigError(f"search space key {key!r} is not a field of model {model!r} (fields: {', '.join(sorted(names))})")
        if key in overrides.model:
            raise ConfigError(f"{key!r} is both fixed with --set and searched; drop one")
    searcher = None
    if search == "optuna":
        try:
            import optuna  # noqa: F401
            from ray.tune.search.optuna import OptunaSearch
        except ImportError:
            raise ConfigError("--search optuna needs Optuna, an optional extra: pip install 'reid-bench[optuna]' "
                              "(or pip install optuna)") from None
        searcher = OptunaSearch()
    mode = "max" if protocol_cls.higher_is_better else "min"
    check_data(protocol_cls, resolved, data_root)
    uri = tracking_uri or tracking.default_tracking_uri()
    tracking.check_uri(uri, must_exist=resume)
    init_ray(address)
    check_resources(cpus_per_trial, gpus_per_trial)
    storage_root = check_storage(storage) if storage else None
    results_root = check_folder(results_dir or Path.cwd() / "reid-bench-results", "--results-dir")
    # Everything about the request is checked; from here on the store is written.
    client, experiment_id = tracking.connect(uri, create=not resume)

    fold = protocol_cls.folds[0]
    recorder = tracking.Recorder(client, experiment_id, uri)
    settings = {"samples": samples, "scheduler": scheduler, "search": search, "max_concurrent": max_concurrent,
                "fold": fold, "space": {k: repr(v) for k, v in space.items()}, "metric": f"validation {protocol_cls.main_score}"}
    base_tags = {"reid_bench.model": model, "reid_bench.protocol": protocol,
                 "reid_bench.config_fingerprint": resolved.fingerprint, **tracking.environment_tags()}
    previous = None
    if resume:
        if experiment_id is None:
            raise RunError(f"--resume: no reid-bench runs in {uri}")
        candidates = client.search_runs(
            [experiment_id],
            filter_string=(f"tags.`reid_bench.kind` = 'search' and tags.`reid_bench.model` = '{model}' and "
                           f"tags.`reid_bench.protocol` = '{protocol}'"),
            order_by=["attributes.start_time DESC"], max_results=20)
        previous = next((r for r in candidates if r.info.status != "FINISHED"), None)
        if previous is None:
            raise RunError(f"--resume: no unfinished search of {model} on {protocol}")
    if previous is not None:
        name = previous.data.tags["reid_bench.search_name"]
        storage_path = previous.data.tags["reid_bench.search_storage"]
        parent_id = previous.info.run_id
        recorder.reopen_parent(parent_id)
    else:
        name = f"tune-{model}-{protocol}-{time.strftime('%Y%m%d-%H%M%S')}"
        storage_path = storage_root or str(results_root / name / "ray")
        parent_id = recorder.start_parent(
            f"tune {model}@{protocol}", tracking.flatten("search", settings),
            dict(base_tags, **{"reid_bench.search_name": name, "reid_bench.search_storage": storage_path}), kind="search")
    base_spec = TrialSpec(model=model, protocol=protocol, fold=fold, seed=0,
                          overrides=overrides.as_scopes(),
                          data_root=str(Path(data_root).resolve()) if data_root else None, device=device,
                          work_dir=str(results_root / name), threads=max(1, int(cpus_per_trial)), split="validation")
    view = LiveView(f"tune {model} on {protocol} (validation split; MLflow run {parent_id[:8]})", [],
                    "val_score", enabled=show_progress)
    events = SearchCoordinator(recorder, view, {}, {"model": model, "protocol": protocol, "split": "validation"},
                               dict(base_tags, **{"reid_bench.search_run_id": parent_id}), base_spec=base_spec)
    events.trial_kind = "tune-trial"

    from reid_bench.ray_bridge import COORDINATORS, TuneBridge

    token = name  # stable: a restored search unpickles a bridge carrying this same token
    COORDINATORS[token] = events
    trainable = tune.with_resources(_tune_trainable, {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
    spec_dict = {k: getattr(base_spec, k) for k in ("model", "protocol", "fold", "seed", "overrides", "data_root",
                                                      "device", "work_dir", "threads", "cache_dir", "split")}
    status = "FAILED"
    try:
        with view:
            if previous is not None and tune.Tuner.can_restore(str(Path(storage_path) / name)):
                tuner = tune.Tuner.restore(str(Path(storage_path) / name), trainable, resume_unfinished=True,
                                           resume_errored=True)
            else:
                sched = None
                if scheduler == "asha":
                    from ray.tune.schedulers import ASHAScheduler

                    sched = ASHAScheduler(max_t=_max_iterations(resolved.model, space), grace_period=1,
                                          reduction_factor=2)
                tuner = tune.Tuner(
                    trainable,
                    param_space={"spec": spec_dict, "params": space},
                    tune_config=tune.TuneConfig(metric="val_score", mode=mode, scheduler=sched, search_alg=searcher,
                                                num_samples=samples, max_concurrent_trials=max_concurrent),
                    run_config=tune.RunConfig(name=name, storage_path=storage_path, verbose=0, callbacks=[TuneBridge(token)]),
                )
            grid = tuner.fit()
        if grid.num_terminated + grid.num_errors < samples:
            # Ray Tune catches Ctrl-C itself, saves the experiment and returns a partial grid.
            raise KeyboardInterrupt
        finished = [r for r in grid if r.error is None and r.metrics and r.metrics.get("val_score") is not None]
        if not finished:
            raise RunError("no search trial finished; see the tune-trial runs in MLflow for tracebacks")
        best = grid.get_best_result(metric="val_score", mode=mode, scope="last", filter_nan_and_inf=True)
        best_params = dict(best.config["params"])
        best_score = float(best.metrics["val_score"])
        for k, v in best_params.items():
            recorder.client.log_param(parent_id, f"best.{k}", _as_override(v))
        recorder.client.log_metric(parent_id, "best_val_score", best_score)
        recorder.client.set_tag(parent_id, "reid_bench.best_config", json.dumps(best_params, default=str, sort_keys=True))
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        COORDINATORS.pop(token, None)
        try:
            recorder.end_parent(status)
        finally:
            recorder.terminate_open("KILLED" if status == "KILLED" else "FAILED")

    invocation = None
    if evaluate_best:
        tuned = Overrides(model={**overrides.model, **{k: _as_override(v) for k, v in best_params.items()}},
                          probe=dict(overrides.probe), data=dict(overrides.data), eval=dict(overrides.eval))
        budget = f"{len(grid)} samples, {scheduler}, {search}"
        invocation = run_benchmark(
            RunRequest(model, protocol, tuned, seeds=seeds, data_root=data_root),
            ExecutionOptions(tracking_uri=uri, address=address, gpus_per_trial=gpus_per_trial,
                             cpus_per_trial=cpus_per_trial, device=device, results_dir=results_dir,
                             show_progress=show_progress,
                             extra_tags={"reid_bench.tuned": budget, "reid_bench.search_run_id": parent_id}))
    return SearchResult(parent_id, best_params, best_score, len(grid), invocation,
                        events.table(grid, protocol_cls.higher_is_better))
