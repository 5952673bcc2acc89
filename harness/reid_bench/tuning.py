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
from reid_bench.runner import (Coordinator, ExecutionOptions, InvocationResult, LiveView, Plan, RunError, RunRequest,
                               TrialState, check_plan_data, check_resources, check_storage, find_resumable, init_ray,
                               results_root, run_benchmark, validate)
from reid_bench.tracking import Tag
from reid_bench.trial import LocalSink, TrialSpec, execute_fit

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


@dataclass(frozen=True)
class SearchRequest:
    """What to search: ``run`` is the model on the protocol with its fixed overrides, data and
    the seeds of the final run; the rest says how the model's space is sampled. Where and how
    the trials run is an ``ExecutionOptions``, as for ``run``."""

    run: RunRequest
    samples: int = 8
    scheduler: str = "asha"
    search: str = "random"
    #: A TOML or JSON space (``load_space``); default: the model's ``search_space()``.
    space_file: str | None = None
    max_concurrent: int | None = None
    #: Run the best configuration on the protocol's test folds once the search ends.
    evaluate_best: bool = True


@dataclass
class SearchPlan:
    """A validated search: the run's plan and the space and searcher built from the request."""

    request: SearchRequest
    plan: Plan
    space: dict[str, Any]
    searcher: Any

    @property
    def mode(self) -> str:
        return "max" if self.plan.protocol_cls.higher_is_better else "min"

    @property
    def fold(self) -> str:
        """The fold whose training data the search carves its validation split from."""
        return self.plan.folds[0]


def _check_search_settings(request: SearchRequest) -> None:
    if request.scheduler not in ("asha", "fifo"):
        raise ConfigError(f"--scheduler {request.scheduler!r}: expected 'asha' or 'fifo'")
    if request.search not in ("random", "optuna"):
        raise ConfigError(f"--search {request.search!r}: expected 'random' or 'optuna'")
    if not 1 <= request.samples <= MAX_SAMPLES:
        raise ConfigError(f"--samples {request.samples}: must be from 1 to {MAX_SAMPLES}")
    if request.max_concurrent is not None and request.max_concurrent < 1:
        raise ConfigError("--max-concurrent must be at least 1")


def _search_space(request: SearchRequest, plan: Plan) -> dict[str, Any]:
    """The space to sample: only fields of the model's config, none of them also fixed by --set."""
    model, overrides = request.run.model, request.run.overrides
    space = (load_space(request.space_file) if request.space_file
             else ray_space(plan.model_cls.search_space() or {}, f"model {model!r}"))
    if not space:
        raise ConfigError(f"model {model!r} declares no search space; pass one with --space FILE")
    names = {f.name for f in fields(plan.resolved.model)}
    for key in space:
        if key not in names:
            raise ConfigError(f"search space key {key!r} is not a field of model {model!r} (fields: {', '.join(sorted(names))})")
        if key in overrides.model:
            raise ConfigError(f"{key!r} is both fixed with --set and searched; drop one")
    return space


def _searcher(search: str) -> Any:
    """Ray Tune's search algorithm: None samples at random; Optuna is an optional extra."""
    if search != "optuna":
        return None
    try:
        import optuna  # noqa: F401
        from ray.tune.search.optuna import OptunaSearch
    except ImportError:
        raise ConfigError("--search optuna needs Optuna, an optional extra: pip install 'reid-bench[optuna]' "
                          "(or pip install optuna)") from None
    return OptunaSearch()


def plan_search(request: SearchRequest, options: ExecutionOptions) -> SearchPlan:
    """Check a search whole before anything is written, with the checks ``run`` uses for its
    request (``validate``, ``check_plan_data``) and the search's own between them."""
    if not options.use_ray:
        raise RunError("tune dispatches its trials with Ray; use_ray=False is for run only")
    plan = validate(request.run, options)
    _check_search_settings(request)
    space = _search_space(request, plan)
    searcher = _searcher(request.search)
    check_plan_data(plan)
    return SearchPlan(request, plan, space, searcher)


@dataclass
class _SearchStore:
    """The opened tracking store of a search: its parent run and where Ray keeps its state."""

    recorder: Any
    parent_id: str
    #: Ray Tune's experiment name; also the token its callbacks find the coordinator by.
    name: str
    storage_path: str
    previous: Any
    base_tags: dict[str, str]


def _open_search(search: SearchPlan, options: ExecutionOptions, uri: str, work_root: Path,
                 storage_root: str | None) -> _SearchStore:
    """Connect, find the search ``--resume`` continues, and open its parent run (or reopen it)."""
    from reid_bench import tracking

    run, protocol_cls = search.request.run, search.plan.protocol_cls
    client, experiment_id = tracking.connect(uri, create=not options.resume)
    recorder = tracking.Recorder(client, experiment_id, uri)
    base_tags = {Tag.MODEL: run.model, Tag.PROTOCOL: run.protocol,
                 Tag.CONFIG_FINGERPRINT: search.plan.fingerprint, **tracking.environment_tags()}
    if options.resume:
        previous = find_resumable(client, experiment_id, uri, "search", run.model, run.protocol,
                                  run_id=options.resume if isinstance(options.resume, str) else None)
        name = previous.data.tags[Tag.SEARCH_NAME]
        storage_path = previous.data.tags[Tag.SEARCH_STORAGE]
        recorder.reopen_parent(previous.info.run_id)
        return _SearchStore(recorder, previous.info.run_id, name, storage_path, previous, base_tags)
    request = search.request
    settings = {"samples": request.samples, "scheduler": request.scheduler, "search": request.search,
                "max_concurrent": request.max_concurrent, "fold": search.fold,
                "space": {k: repr(v) for k, v in search.space.items()},
                "metric": f"validation {protocol_cls.main_score}"}
    name = f"tune-{run.model}-{run.protocol}-{time.strftime('%Y%m%d-%H%M%S')}"
    storage_path = storage_root or str(work_root / name / "ray")
    parent_id = recorder.start_parent(
        f"tune {run.model}@{run.protocol}", tracking.flatten("search", settings),
        dict(base_tags, **{Tag.SEARCH_NAME: name, Tag.SEARCH_STORAGE: storage_path}), kind="search")
    return _SearchStore(recorder, parent_id, name, storage_path, None, base_tags)


def _coordinator(search: SearchPlan, store: _SearchStore, options: ExecutionOptions,
                 work_root: Path) -> SearchCoordinator:
    """The driver's side of the search: every sample's run in MLflow and on the live table."""
    run = search.request.run
    base_spec = TrialSpec(model=run.model, protocol=run.protocol, fold=search.fold, seed=0,
                          overrides=run.overrides.as_scopes(),
                          data_root=str(Path(run.data_root).resolve()) if run.data_root else None,
                          device=options.device, work_dir=str(work_root / store.name),
                          threads=max(1, int(options.cpus_per_trial)), cache_dir=search.plan.cache_dir,
                          split="validation")
    view = LiveView(f"tune {run.model} on {run.protocol} (validation split; MLflow run {store.parent_id[:8]})", [],
                    "val_score", enabled=options.show_progress)
    events = SearchCoordinator(store.recorder, view, {},
                               {"model": run.model, "protocol": run.protocol, "split": "validation"},
                               dict(store.base_tags, **{Tag.SEARCH_RUN_ID: store.parent_id}), base_spec=base_spec)
    events.trial_kind = "tune-trial"
    return events


def _tuner(search: SearchPlan, store: _SearchStore, trainable: Any, base_spec: TrialSpec) -> Any:
    """Ray Tune's tuner: the interrupted one restored when resuming a search, else a new one."""
    from ray import tune

    from reid_bench.ray_bridge import TuneBridge

    folder = str(Path(store.storage_path) / store.name)
    if store.previous is not None and tune.Tuner.can_restore(folder):
        return tune.Tuner.restore(folder, trainable, resume_unfinished=True, resume_errored=True)
    request = search.request
    scheduler = None
    if request.scheduler == "asha":
        from ray.tune.schedulers import ASHAScheduler

        scheduler = ASHAScheduler(max_t=_max_iterations(search.plan.resolved.model, search.space), grace_period=1,
                                  reduction_factor=2)
    spec_dict = {k: getattr(base_spec, k) for k in ("model", "protocol", "fold", "seed", "overrides", "data_root",
                                                      "device", "work_dir", "threads", "cache_dir", "split")}
    return tune.Tuner(
        trainable,
        param_space={"spec": spec_dict, "params": search.space},
        tune_config=tune.TuneConfig(metric="val_score", mode=search.mode, scheduler=scheduler,
                                    search_alg=search.searcher, num_samples=request.samples,
                                    max_concurrent_trials=request.max_concurrent),
        # the name is the bridge's token: a restored search unpickles a bridge carrying the same one
        run_config=tune.RunConfig(name=store.name, storage_path=store.storage_path, verbose=0,
                                  callbacks=[TuneBridge(store.name)]),
    )


def _dispatch(search: SearchPlan, store: _SearchStore, events: SearchCoordinator, options: ExecutionOptions) -> Any:
    """Run the samples on Ray; their events reach ``events`` through the bridge. Ray's grid."""
    from ray import tune

    from reid_bench.ray_bridge import COORDINATORS

    COORDINATORS[store.name] = events
    trainable = tune.with_resources(_tune_trainable, {"cpu": options.cpus_per_trial, "gpu": options.gpus_per_trial})
    try:
        with events.view:
            grid = _tuner(search, store, trainable, events.base_spec).fit()
    finally:
        COORDINATORS.pop(store.name, None)
    if grid.num_terminated + grid.num_errors < search.request.samples:
        # Ray Tune catches Ctrl-C itself, saves the experiment and returns a partial grid.
        raise KeyboardInterrupt
    return grid


def _record_best(search: SearchPlan, store: _SearchStore, grid: Any) -> tuple[dict[str, Any], float]:
    """The best sample's values and validation score, recorded on the search's parent run."""
    finished = [r for r in grid if r.error is None and r.metrics and r.metrics.get("val_score") is not None]
    if not finished:
        raise RunError("no search trial finished; see the tune-trial runs in MLflow for tracebacks")
    best = grid.get_best_result(metric="val_score", mode=search.mode, scope="last", filter_nan_and_inf=True)
    best_params = dict(best.config["params"])
    best_score = float(best.metrics["val_score"])
    client = store.recorder.client
    for k, v in best_params.items():
        client.log_param(store.parent_id, f"best.{k}", _as_override(v))
    client.log_metric(store.parent_id, "best_val_score", best_score)
    client.set_tag(store.parent_id, Tag.BEST_CONFIG, json.dumps(best_params, default=str, sort_keys=True))
    return best_params, best_score


def _evaluate_best(search: SearchPlan, store: _SearchStore, options: ExecutionOptions, uri: str, samples: int,
                   best_params: dict[str, Any]) -> InvocationResult:
    """The best configuration as a normal run on the test folds, its rows marked as tuned with
    the search's budget. It continues nothing and uses its own Ray storage, as a plain run does."""
    request = search.request
    fixed = request.run.overrides
    tuned = Overrides(model={**fixed.model, **{k: _as_override(v) for k, v in best_params.items()}},
                      probe=dict(fixed.probe), data=dict(fixed.data), eval=dict(fixed.eval))
    budget = f"{samples} samples, {request.scheduler}, {request.search}"
    return run_benchmark(
        dataclasses.replace(request.run, overrides=tuned),
        dataclasses.replace(options, tracking_uri=uri, resume=False, storage=None,
                            extra_tags={**options.extra_tags, Tag.TUNED: budget, Tag.SEARCH_RUN_ID: store.parent_id}))


def run_search(request: SearchRequest, options: ExecutionOptions | None = None) -> SearchResult:
    """Plan, open the store, dispatch the samples, record the best; then run it on the test folds
    (``request.evaluate_best``). Raises RunError/ConfigError/TrackingError before anything is
    written when the request itself is wrong. ``options.resume`` continues the latest
    interrupted search of the model on the protocol, restoring Ray's state of it."""
    from reid_bench import tracking

    options = options or ExecutionOptions()
    search = plan_search(request, options)
    uri = options.tracking_uri or tracking.default_tracking_uri()
    tracking.check_uri(uri, must_exist=bool(options.resume))
    init_ray(options.address)
    check_resources(options.cpus_per_trial, options.gpus_per_trial)
    storage_root = check_storage(options.storage) if options.storage else None
    work_root = results_root(options.results_dir)

    # Everything about the request is checked; from here on the store is written.
    store = _open_search(search, options, uri, work_root, storage_root)
    events = _coordinator(search, store, options, work_root)
    status = "FAILED"
    try:
        grid = _dispatch(search, store, events, options)
        best_params, best_score = _record_best(search, store, grid)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        try:
            store.recorder.end_parent(status)
        finally:
            store.recorder.terminate_open("KILLED" if status == "KILLED" else "FAILED")

    invocation = (_evaluate_best(search, store, options, uri, len(grid), best_params) if request.evaluate_best
                  else None)
    return SearchResult(store.parent_id, best_params, best_score, len(grid), invocation,
                        events.table(grid, search.plan.protocol_cls.higher_is_better))
