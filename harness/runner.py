"""An invocation of ``reid-bench run``: folds x seeds as trials, dispatched by Ray Tune (or in
process), with the driver recording every event in MLflow and on a live table."""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from reid_bench.api import seeds_for
from reid_bench.config import Overrides
from reid_bench.registry import get_registry
from reid_bench.trial import TrialSpec, execute_trial, format_failure, resolve_config


class RunError(RuntimeError):
    """A problem found before any trial started (bad resources, bad configuration)."""


@dataclass
class TrialState:
    spec: TrialSpec
    status: str = "PENDING"
    phase: str = ""
    epoch: int | None = None
    progress: float = 0.0
    result: dict[str, Any] | None = None
    error: str = ""
    started: float | None = None
    ended: float | None = None
    run_id: str = ""


@dataclass
class InvocationResult:
    parent_run_id: str
    experiment_id: str
    tracking_uri: str
    trials: list[TrialState]
    summary: dict[str, dict[str, dict[str, float]]]
    wall_s: float
    overhead: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(t.status == "FINISHED" for t in self.trials)

    def as_json(self) -> dict[str, Any]:
        return {
            "parent_run_id": self.parent_run_id,
            "experiment_id": self.experiment_id,
            "tracking_uri": self.tracking_uri,
            "ok": self.ok,
            "wall_s": round(self.wall_s, 3),
            "overhead": {k: round(v, 3) for k, v in self.overhead.items()},
            "trials": [
                {
                    "fold": t.spec.fold,
                    "seed": t.spec.seed,
                    "status": t.status,
                    "run_id": t.run_id,
                    "metrics": (t.result or {}).get("metrics", {}),
                    "timings": (t.result or {}).get("timings", {}),
                    "error": t.error.strip().splitlines()[-1] if t.error.strip() else "",
                }
                for t in self.trials
            ],
            "summary": self.summary,
        }


def summarise(trials: list[TrialState], metrics: tuple[str, ...]) -> dict[str, dict[str, dict[str, float]]]:
    """Mean, sample std and n over seeds for each fold (finished trials only)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    folds = list(dict.fromkeys(t.spec.fold for t in trials))
    for fold in folds:
        done = [t.result["metrics"] for t in trials if t.spec.fold == fold and t.status == "FINISHED" and t.result]
        out[fold] = {}
        for m in metrics:
            vals = [float(r[m]) for r in done if r.get(m) is not None]
            if vals:
                out[fold][m] = {
                    "mean": statistics.fmean(vals),
                    "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
                    "n": len(vals),
                }
    return out


class LiveView:
    """A rich table of trials on a terminal; one line per event elsewhere (CI logs)."""

    def __init__(self, title: str, trials: list[TrialState], main_score: str, enabled: bool = True):
        from rich.console import Console

        self.console = Console(stderr=True)
        self.title = title
        self.trials = trials
        self.main_score = main_score
        self.enabled = enabled
        self.live = None
        self._last_refresh = 0.0

    def __enter__(self) -> "LiveView":
        if self.enabled and self.console.is_terminal:
            from rich.live import Live

            self.live = Live(self._table(), console=self.console, refresh_per_second=4, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.update(self._table())
            self.live.__exit__(*exc)

    def update(self, state: TrialState, event: str) -> None:
        if not self.enabled:
            return
        if self.live is not None:
            now = time.monotonic()
            if event != "progress" or now - self._last_refresh > 0.25:
                self.live.update(self._table())
                self._last_refresh = now
            return
        if event == "progress":
            return
        line = f"[trial {state.spec.key}] {state.status.lower()}"
        if state.result:
            score = state.result["metrics"].get(self.main_score)
            if score is not None:
                line += f"  {self.main_score}={100 * score:.1f}%  ({state.result['timings']['trial_s']:.1f}s)"
        if state.error:
            line += "  " + state.error.strip().splitlines()[-1]
        self.console.print(line, highlight=False, markup=False)

    def _table(self):
        from rich.table import Table

        table = Table(title=self.title, title_justify="left")
        for col in ("fold", "seed", "status", "phase", "epoch", "progress", self.main_score, "time"):
            table.add_column(col, justify="right" if col not in ("fold", "status", "phase") else "left")
        now = time.time()
        for t in self.trials:
            score = ""
            if t.result:
                value = t.result["metrics"].get(self.main_score)
                score = f"{100 * value:.1f}" if value is not None else ""
            elapsed = ""
            if t.started:
                elapsed = f"{(t.ended or now) - t.started:.0f}s"
            colour = {"FINISHED": "green", "FAILED": "red", "RUNNING": "yellow"}.get(t.status, "")
            table.add_row(
                t.spec.fold,
                str(t.spec.seed),
                f"[{colour}]{t.status}[/]" if colour else t.status,
                t.phase,
                "" if t.epoch is None else str(t.epoch),
                f"{100 * t.progress:.0f}%",
                score,
                elapsed,
            )
        return table


class Coordinator:
    """Turns trial events (from Ray callbacks or the in-process loop) into MLflow writes and UI."""

    def __init__(self, recorder, view: LiveView, trials: dict[str, TrialState], base_params: dict[str, str], base_tags: dict[str, str]):
        self.recorder = recorder
        self.view = view
        self.trials = trials
        self.base_params = base_params
        self.base_tags = base_tags

    def started(self, key: str) -> None:
        state = self.trials[key]
        if state.status == "RUNNING":
            return
        state.status, state.started, state.phase = "RUNNING", time.time(), "start"
        params = dict(self.base_params, fold=state.spec.fold, seed=str(state.spec.seed))
        tags = dict(self.base_tags, **{"reid_bench.fold": state.spec.fold, "reid_bench.seed": str(state.spec.seed)})
        state.run_id = self.recorder.start_trial(key, f"{state.spec.model}@{state.spec.protocol}/{key}", params, tags)
        self.view.update(state, "start")

    def reported(self, key: str, payload: dict[str, Any]) -> None:
        state = self.trials[key]
        if state.status != "RUNNING":
            self.started(key)
        state.phase = str(payload.get("phase", state.phase))
        if "epoch" in payload:
            state.epoch = int(payload["epoch"])
        if "progress" in payload:
            state.progress = float(payload["progress"])
        self.recorder.log_progress(key, payload)
        self.view.update(state, "progress")

    def finished(self, key: str, result: dict[str, Any]) -> None:
        state = self.trials[key]
        if state.status != "RUNNING":
            self.started(key)
        state.ended = time.time()
        result["wall_s"] = state.ended - (state.started or state.ended)
        try:
            self.recorder.finish_trial(key, result)
        except Exception as exc:  # a result that cannot be recorded is not a finished trial
            from reid_bench.trial import format_failure

            self.failed(key, "recording the result in MLflow failed:\n" + format_failure(exc))
            return
        state.result, state.status, state.phase, state.progress = result, "FINISHED", "done", 1.0
        self.view.update(state, "finish")

    def failed(self, key: str, error: str) -> None:
        state = self.trials[key]
        if state.status != "RUNNING":
            self.started(key)
        state.ended = time.time()
        state.status, state.error, state.phase = "FAILED", error, "failed"
        self.recorder.fail_trial(key, error)
        self.view.update(state, "fail")


# ---------------------------------------------------------------------------------- dispatchers


def dispatch_in_process(specs: list[TrialSpec], events: Coordinator) -> None:
    """Debug/test path: the same ``execute_trial``, sequentially, in this process."""
    for spec in specs:
        key = spec.key
        events.started(key)
        try:
            result = execute_trial(spec, report=lambda payload, key=key: events.reported(key, payload))
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            events.failed(key, format_failure(exc))
        else:
            events.finished(key, result)


def _ray_trainable(config: dict[str, Any]) -> None:
    """Runs on a Ray worker: rebuild the spec, execute, report results as JSON strings."""
    from ray import tune

    spec = TrialSpec(**config["spec"], fold=config["fold"], seed=config["seed"])
    result = execute_trial(spec, report=lambda payload: tune.report({"reid_event": "progress", "payload": json.dumps(payload)}))
    tune.report({"reid_event": "final", "payload": json.dumps(result, default=str)})


def init_ray(address: str | None, num_cpus: int | None = None) -> None:
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR",
                              "configure_logging": True}
    if address:
        kwargs["address"] = address
    elif num_cpus:
        kwargs["num_cpus"] = num_cpus
    kwargs["runtime_env"] = {"env_vars": {"RAY_AUTH_MODE": "disabled", "PYTHONWARNINGS": "ignore"}}
    ray.init(**kwargs)


def check_gpus(gpus_per_trial: float) -> None:
    """Refuse before anything starts when the cluster cannot host one trial's GPUs."""
    if gpus_per_trial <= 0:
        return
    import ray

    available = float(ray.cluster_resources().get("GPU", 0.0))
    if available < gpus_per_trial:
        raise RunError(
            f"--gpus-per-trial {gpus_per_trial:g} asks for more GPUs than the Ray cluster has ({available:g}); "
            "no trial was started"
        )


def dispatch_ray(specs: list[TrialSpec], events: Coordinator, gpus_per_trial: float, cpus_per_trial: float,
                 storage_path: str, name: str, max_failures: int = 0) -> None:
    from ray import tune

    folds = list(dict.fromkeys(s.fold for s in specs))
    seeds = list(dict.fromkeys(s.seed for s in specs))
    wanted = {s.key for s in specs}
    base = specs[0]
    spec_dict = {"model": base.model, "protocol": base.protocol, "overrides": base.overrides,
                 "data_root": base.data_root, "device": base.device, "work_dir": base.work_dir, "threads": base.threads,
                 "cache_dir": base.cache_dir}

    from reid_bench.ray_bridge import COORDINATORS, TuneBridge

    token = f"{name}-{id(events)}"
    COORDINATORS[token] = events
    grid = {"fold": tune.grid_search(folds), "seed": tune.grid_search(seeds), "spec": spec_dict}
    if len(wanted) != len(folds) * len(seeds):  # a partial grid (resume): list the pairs
        pairs = [{"fold": s.fold, "seed": s.seed} for s in specs]
        grid = {"pair": tune.grid_search(pairs), "spec": spec_dict}
        trainable_fn = lambda config: _ray_trainable({**config, **config["pair"]})  # noqa: E731
    else:
        trainable_fn = _ray_trainable
    resources = {"cpu": cpus_per_trial, "gpu": gpus_per_trial}
    trainable = tune.with_resources(trainable_fn, resources)
    tuner = tune.Tuner(
        trainable,
        param_space=grid,
        tune_config=tune.TuneConfig(num_samples=1),
        run_config=tune.RunConfig(
            name=name,
            storage_path=storage_path,
            verbose=0,
            callbacks=[TuneBridge(token)],
            failure_config=tune.FailureConfig(max_failures=max_failures),
        ),
    )
    try:
        tuner.fit()
    finally:
        COORDINATORS.pop(token, None)


# ---------------------------------------------------------------------------------- the invocation


def run_benchmark(
    model: str,
    protocol: str,
    overrides: Overrides,
    seeds: int | None = None,
    tracking_uri: str | None = None,
    address: str | None = None,
    gpus_per_trial: float = 0.0,
    cpus_per_trial: float = 1.0,
    use_ray: bool = True,
    data_root: str | None = None,
    device: str = "auto",
    results_dir: str | None = None,
    show_progress: bool = True,
    folds: list[str] | None = None,
    max_failures: int = 0,
    cache_dir: str | None = "default",
) -> InvocationResult:
    """Validate, record, dispatch, summarise. Raises RunError/ConfigError/TrackingError before
    anything is written when the request itself is wrong."""
    from reid_bench import tracking

    t_start = time.perf_counter()
    registry = get_registry()
    model_cls = registry.model(model)
    protocol_cls = registry.protocol(protocol)
    if model_cls.modality != protocol_cls.modality:
        raise RunError(f"model {model!r} works on {model_cls.modality} data; protocol {protocol!r} is {protocol_cls.modality}")
    if gpus_per_trial < 0:
        raise RunError("--gpus-per-trial must be >= 0")
    resolved = resolve_config(model, protocol, overrides, registry)
    fold_list = list(protocol_cls.folds)
    if folds:
        unknown = [f for f in folds if f not in fold_list]
        if unknown:
            raise RunError(f"protocol {protocol!r} has no fold {unknown[0]!r}; folds: {', '.join(fold_list)}")
        fold_list = folds
    seed_list = seeds_for(protocol_cls, seeds)
    uri = tracking_uri or tracking.default_tracking_uri()
    client, experiment_id = tracking.connect(uri)
    results_root = Path(results_dir or Path.cwd() / "reid-bench-results").resolve()

    t_ray = time.perf_counter()
    if use_ray:
        init_ray(address)
        check_gpus(gpus_per_trial)
    elif gpus_per_trial > 0:
        import torch

        if torch.cuda.device_count() < gpus_per_trial:
            raise RunError(f"--gpus-per-trial {gpus_per_trial:g}: this machine has {torch.cuda.device_count()} GPUs; no trial was started")
    ray_start_s = time.perf_counter() - t_ray

    invocation = f"{model}-{protocol}-{time.strftime('%Y%m%d-%H%M%S')}"
    work_dir = results_root / invocation
    work_dir.mkdir(parents=True, exist_ok=True)
    specs = [
        TrialSpec(model=model, protocol=protocol, fold=f, seed=s,
                  overrides={"model": overrides.model, "probe": overrides.probe, "data": overrides.data},
                  data_root=str(Path(data_root).resolve()) if data_root else None, device=device, work_dir=str(work_dir),
                  threads=max(1, int(cpus_per_trial)) if use_ray else None,
                  cache_dir=cache_dir if cache_dir in (None, "default") else str(Path(cache_dir).resolve()))
        for f in fold_list for s in seed_list
    ]
    trials = {s.key: TrialState(s) for s in specs}
    recorder = tracking.Recorder(client, experiment_id, uri)
    fingerprint = resolved.fingerprint
    config_params = tracking.flatten("", resolved.as_dict())
    base_params = {"model": model, "protocol": protocol, "protocol_version": str(protocol_cls.version), **config_params}
    base_tags = {
        "reid_bench.model": model,
        "reid_bench.protocol": protocol,
        "reid_bench.protocol_version": str(protocol_cls.version),
        "reid_bench.config_fingerprint": fingerprint,
        "reid_bench.mode": protocol_cls.mode,
        "reid_bench.main_score": protocol_cls.main_score,
        "reid_bench.overrides": json.dumps(overrides.as_flat(), sort_keys=True),
        **tracking.environment_tags(),
    }
    t_mlflow = time.perf_counter()
    parent_id = recorder.start_parent(
        f"{model}@{protocol}",
        dict(base_params, folds=json.dumps(fold_list), seeds=json.dumps(seed_list), dispatcher="ray" if use_ray else "in-process"),
        dict(base_tags, **{"reid_bench.expected_trials": json.dumps([s.key for s in specs]),
                           "reid_bench.folds": json.dumps(fold_list),
                           "reid_bench.invocation": invocation}),
    )
    mlflow_setup_s = time.perf_counter() - t_mlflow
    view = LiveView(f"{model} on {protocol}  (MLflow run {parent_id[:8]})", list(trials.values()),
                    protocol_cls.main_score, enabled=show_progress)
    events = Coordinator(recorder, view, trials, base_params, base_tags)
    status = "FAILED"
    t_dispatch = time.perf_counter()
    overhead: dict[str, float] = {}
    try:
        with view:
            if use_ray:
                dispatch_ray(specs, events, gpus_per_trial, cpus_per_trial, str(work_dir / "ray"), invocation, max_failures)
            else:
                dispatch_in_process(specs, events)
        for state in trials.values():  # a trial Ray never started is a failure, not a silent gap
            if state.status in ("PENDING", "RUNNING"):
                events.failed(state.spec.key, state.error or "trial did not complete")
        status = "FINISHED" if all(t.status == "FINISHED" for t in trials.values()) else "FAILED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        summary = summarise(list(trials.values()), protocol_cls().metrics)
        compute = sum((t.result or {}).get("timings", {}).get("trial_s", 0.0) for t in trials.values())
        overhead = {
            "ray_start_s": ray_start_s,
            "mlflow_setup_s": mlflow_setup_s,
            "dispatch_s": time.perf_counter() - t_dispatch,
            "trial_compute_s": compute,
            "wall_s": time.perf_counter() - t_start,
        }
        try:
            recorder.end_parent(status, summary, {f"time/{k}": v for k, v in overhead.items()})
        finally:
            recorder.terminate_open("KILLED" if status == "KILLED" else "FAILED")
    return InvocationResult(parent_id, experiment_id, uri, list(trials.values()), summary, overhead["wall_s"], overhead)
