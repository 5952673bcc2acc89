"""An invocation of ``reid-bench run``: folds x seeds as trials, dispatched by Ray Tune (or in
process), with the driver recording every event in MLflow and on a live table."""

from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    attempts: int = 0
    fit_started: float | None = None
    message: str = ""


@dataclass
class InvocationResult:
    parent_run_id: str
    experiment_id: str
    tracking_uri: str
    trials: list[TrialState]
    summary: dict[str, dict[str, dict[str, float]]]
    wall_s: float
    overhead: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(t.status == "FINISHED" for t in self.trials)

    def as_json(self) -> dict[str, Any]:
        return {
            "parent_run_id": self.parent_run_id,
            "experiment_id": self.experiment_id,
            "tracking_uri": self.tracking_uri,
            "ok": self.ok,
            "skipped": self.skipped,
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
                    "torch_threads": (t.result or {}).get("torch_threads"),
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


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _eta(state: TrialState) -> str:
    """``  [37%, 2m10s in, ETA 3m40s]`` from the time spent fitting and the fraction done."""
    if state.fit_started is None:
        return ""
    spent = time.time() - state.fit_started
    text = f"  [{100 * state.progress:.0f}%, {_duration(spent)} in"
    if 0.0 < state.progress < 1.0:
        text += f", ETA {_duration(spent * (1.0 - state.progress) / state.progress)}"
    return text + "]"


def summary_metrics(summary: dict[str, dict[str, dict[str, float]]]) -> dict[str, float]:
    """The parent run's scores: ``<metric>/<fold>/mean`` and ``/std`` over seeds, on the trials'
    scale (fractions in [0, 1], as every metric reid-bench stores), so that MLflow's run table
    shows them without opening the children."""
    from reid_bench.tracking import metric_name

    out: dict[str, float] = {}
    for fold, values in summary.items():
        for metric, stats in values.items():
            for stat in ("mean", "std"):
                out[metric_name(f"{metric}/{fold}/{stat}")] = float(stats[stat])
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
        if event == "message":
            self.console.print(f"[trial {state.spec.key}] {state.message}{_eta(state)}", highlight=False, markup=False)
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
            colour = {"FINISHED": "green", "FAILED": "red", "RUNNING": "yellow", "STOPPED": "blue"}.get(t.status, "")
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

    trial_kind = "trial"

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
        params = dict(self.base_params, fold=state.spec.fold, seed=str(state.spec.seed), **self.trial_params(key))
        tags = dict(self.base_tags, **{"reid_bench.fold": state.spec.fold, "reid_bench.seed": str(state.spec.seed)})
        state.run_id = self.recorder.start_trial(key, f"{state.spec.model}@{state.spec.protocol}/{key}", params, tags,
                                                 kind=self.trial_kind)
        self.view.update(state, "start")

    def trial_params(self, key: str) -> dict[str, str]:
        return {}

    def reported(self, key: str, payload: dict[str, Any]) -> None:
        state = self.trials[key]
        if state.status != "RUNNING":
            self.started(key)
        state.phase = str(payload.get("phase", state.phase))
        if state.phase == "fit" and state.fit_started is None:
            state.fit_started = time.time()
        if "epoch" in payload:
            state.epoch = int(payload["epoch"])
        if "progress" in payload:
            state.progress = float(payload["progress"])
        self.recorder.log_progress(key, payload)
        if payload.get("message"):
            state.message = str(payload["message"])
            self.view.update(state, "message")
        else:
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

    def retried(self, key: str, error: str) -> None:
        state = self.trials[key]
        state.attempts += 1
        self.recorder.note_retry(key, state.attempts, error)
        self.view.update(state, "retry")

    def completed(self, key: str) -> None:
        """Ray ended a trial without an error. Without a final result it was stopped early (ASHA)."""
        state = self.trials.get(key)
        if state is None or state.status != "RUNNING":
            return
        state.ended = time.time()
        state.status, state.phase = "STOPPED", "stopped early"
        self.recorder.stop_trial(key, "stopped early by the scheduler")
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


def dispatch_in_process(specs: list[TrialSpec], events: Coordinator, max_failures: int = 0) -> None:
    """Debug/test path: the same ``execute_trial``, sequentially, in this process, with the
    same retry rule as Ray's FailureConfig (a trial is tried up to 1 + max_failures times)."""
    for spec in specs:
        key = spec.key
        events.started(key)
        for attempt in range(max_failures + 1):
            try:
                result = execute_trial(spec, report=lambda payload, key=key: events.reported(key, payload))
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                if attempt < max_failures:
                    events.retried(key, format_failure(exc))
                    continue
                events.failed(key, format_failure(exc))
            else:
                result["node"] = "in-process"
                events.finished(key, result)
            break


def _ray_trainable(config: dict[str, Any]) -> None:
    """Runs on a Ray worker: rebuild the spec, execute, report results as JSON strings."""
    from ray import tune

    spec = TrialSpec(**config["spec"], fold=config["fold"], seed=config["seed"])
    result = execute_trial(spec, report=lambda payload: tune.report({"reid_event": "progress", "payload": json.dumps(payload)}))
    import ray

    result["node"] = ray.get_runtime_context().get_node_id()
    tune.report({"reid_event": "final", "payload": json.dumps(result, default=str)})


def init_ray(address: str | None) -> None:
    """Join the cluster at ``address``, or start a private local instance.

    ``ray.init()`` without an address attaches to any cluster a ``ray start`` left on this host
    (another user's, or a test's), so a local run asks for ``address="local"``: always a new
    instance, ended with this process. Ray 2.60's servers listen on every interface, so a local
    instance keeps Ray's token authentication on, with a token of its own (drawn here, handed
    to its workers through the environment, never written to disk) unless the environment
    configures authentication itself. The harness never switches authentication off.
    """
    import ray

    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    if ray.is_initialized():
        return
    configured = any(os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"))
    if not address and not configured:
        import secrets

        # Ray turns token mode on for a new local instance itself; the token is this instance's.
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    ray.init(address=address or "local", include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             configure_logging=True, runtime_env={"env_vars": {"PYTHONWARNINGS": "ignore"}})


def check_resources(cpus_per_trial: float, gpus_per_trial: float) -> None:
    """Refuse before anything is written when the cluster cannot host one trial: such a trial
    would wait PENDING for ever."""
    import ray

    resources = ray.cluster_resources()
    for flag, wanted, name in (("--cpus-per-trial", cpus_per_trial, "CPU"), ("--gpus-per-trial", gpus_per_trial, "GPU")):
        available = float(resources.get(name, 0.0))
        if wanted > 0 and available < wanted:
            raise RunError(f"{flag} {wanted:g} asks for more {name}s than the Ray cluster has ({available:g}); "
                           "no trial was started")


def seconds_since_process_start() -> float | None:
    """How long this process has lived, from the kernel's record of its start (Linux; 10 ms ticks):
    the fixed cost a user waits for includes the interpreter and every import, which no timer
    started inside the program sees."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def check_trial_options(cpus_per_trial: float, gpus_per_trial: float, max_failures: int) -> None:
    if not cpus_per_trial > 0:
        raise RunError(f"--cpus-per-trial {cpus_per_trial:g}: must be > 0")
    if not gpus_per_trial >= 0:
        raise RunError(f"--gpus-per-trial {gpus_per_trial:g}: must be >= 0")
    if max_failures < 0:
        raise RunError(f"--max-failures {max_failures}: must be >= 0")


def check_device(device: str, use_ray: bool) -> None:
    """``--device``: auto, cpu, cuda or cuda:N; without Ray, a CUDA device must be visible here."""
    import re

    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        raise RunError(f"--device {device!r}: expected auto, cpu, cuda or cuda:N")
    if device.startswith("cuda") and not use_ray:
        import torch

        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise RunError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA devices")


def check_local_gpus(gpus_per_trial: float) -> None:
    """``--no-ray``: the GPUs this machine has."""
    if gpus_per_trial <= 0:
        return
    import torch

    if torch.cuda.device_count() < gpus_per_trial:
        raise RunError(f"--gpus-per-trial {gpus_per_trial:g}: this machine has {torch.cuda.device_count()} GPUs; "
                       "no trial was started")


def check_data(protocol_cls: Any, resolved: Any, data_root: str | None, cache_dir: str | Path | None = "default") -> None:
    """Every on-disk dataset the protocol reads is where the run will look for it, and parses:
    a bad file is refused here, naming the file and line, before anything is written. The
    parse goes through the cache, so trials on this machine read the checked records."""
    from reid_bench.datasets import DataFormatError, DatasetNotFoundError, FileDataset
    from reid_bench.trial import HarnessData

    data = HarnessData(get_registry(), str(Path(data_root).resolve()) if data_root else None, resolved.data,
                       cache_dir=cache_dir)
    for name in protocol_cls.datasets:
        dataset = data.dataset(name)
        if not isinstance(dataset, FileDataset):
            continue
        try:
            if not dataset.source_files():
                raise DatasetNotFoundError(f"no data files found under {dataset.require_root()} (the layout it "
                                           f"expects: reid-bench data info {name}). Obtain the data from: {dataset.obtain}")
            data.load(name)
        except (DatasetNotFoundError, DataFormatError, ValueError) as exc:
            raise RunError(f"dataset {name!r}: {exc}") from None
        except OSError as exc:
            raise RunError(f"dataset {name!r}: {exc.filename or ''}: {exc.strerror or exc}") from None


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

    token = name
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
    # Ray Tune would catch Ctrl-C itself and return as if the trials had failed; without its
    # handler the interrupt reaches the runner, which ends the invocation KILLED (--resume continues).
    sigint_handler = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    try:
        tuner.fit()
    finally:
        COORDINATORS.pop(token, None)
        if sigint_handler is None:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = sigint_handler


# ---------------------------------------------------------------------------------- the invocation


def check_storage(storage: str) -> str:
    """Ray's trial storage must be reachable by every node: a URI (s3://, gs://, ...) or a path
    shared by all of them. Checked before anything starts: it must exist or be creatable, and be
    writable."""
    if "://" in storage and not storage.startswith("file://"):
        try:
            import pyarrow.fs

            pyarrow.fs.FileSystem.from_uri(storage)
        except Exception as exc:
            raise RunError(f"--storage {storage!r}: {exc}") from None
        return storage
    path = Path(storage.removeprefix("file://")).expanduser().resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".reid-bench-write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise RunError(f"--storage {storage!r}: not writable ({exc})") from None
    return str(path)


def check_folder(folder: str | Path, flag: str) -> Path:
    """A folder the run writes into (made if missing), or RunError naming it and the cause."""
    path = Path(folder).expanduser().resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"{flag} {path}: cannot create the folder ({exc.strerror or exc})") from None
    if not os.access(path, os.W_OK):
        raise RunError(f"{flag} {path}: not writable")
    return path


def finished_earlier(uri: str, model: str, protocol: str, protocol_version: str, fingerprint: str,
                     keys: list[str]) -> dict[str, Any]:
    """The trials of this exact request (model, protocol version, resolved configuration, fold,
    seed) that already finished in the store, by key; the latest where there are several. Reads
    only: an absent store or experiment means nothing finished."""
    from reid_bench import tracking

    db = tracking.sqlite_path(uri)
    if db is not None and not db.exists():
        return {}
    tags = {"reid_bench.kind": "trial", "reid_bench.model": model, "reid_bench.protocol": protocol,
            "reid_bench.protocol_version": protocol_version, "reid_bench.config_fingerprint": fingerprint}
    if db is not None:
        fast = tracking.finished_runs_in_sqlite(db, tags)
        if fast is not None:
            return _latest_per_key(fast, keys)
    client, experiment_id = tracking.connect(uri, create=False)
    if experiment_id is None:
        return {}
    runs = client.search_runs(
        [experiment_id],
        filter_string=" and ".join([*(f"tags.`{k}` = '{v}'" for k, v in tags.items()), "attributes.status = 'FINISHED'"]),
        order_by=["attributes.start_time DESC"], max_results=10000,
    )
    return _latest_per_key(runs, keys)


def _latest_per_key(runs: list[Any], keys: list[str]) -> dict[str, Any]:
    """``runs`` newest first: the first one of each requested (fold, seed)."""
    found: dict[str, Any] = {}
    for run in runs:
        key = f"{run.data.tags.get('reid_bench.fold')}/seed{run.data.tags.get('reid_bench.seed')}"
        if key in keys and key not in found:
            found[key] = run
    return found


def _earlier_state(state: TrialState, run: Any, metrics: tuple[str, ...]) -> None:
    """A trial that finished in an earlier invocation: its run and its scores, as if run now."""
    state.status, state.run_id, state.phase, state.progress = "FINISHED", run.info.run_id, "done (earlier)", 1.0
    state.result = {"metrics": {m: run.data.metrics[m] for m in metrics if m in run.data.metrics}, "timings": {}}


def find_resumable(client: Any, experiment_id: str, model: str, protocol: str, fingerprint: str,
                   run_id: str | None = None) -> Any:
    """The invocation ``--resume`` continues: the given parent run, or the latest one of the same
    model, protocol and resolved configuration that did not finish."""
    if run_id:
        try:
            run = client.get_run(run_id)
        except Exception:
            raise RunError(f"--resume {run_id}: no such MLflow run") from None
        tags = run.data.tags
        if (tags.get("reid_bench.model"), tags.get("reid_bench.protocol")) != (model, protocol):
            raise RunError(f"--resume {run_id}: that run is {tags.get('reid_bench.model')} on {tags.get('reid_bench.protocol')}")
        if tags.get("reid_bench.config_fingerprint") != fingerprint:
            raise RunError(f"--resume {run_id}: the configuration differs from that run's (pass the same --set values)")
        return run
    runs = client.search_runs(
        [experiment_id],
        filter_string=(f"tags.`reid_bench.kind` = 'invocation' and tags.`reid_bench.model` = '{model}' and "
                       f"tags.`reid_bench.protocol` = '{protocol}' and tags.`reid_bench.config_fingerprint` = '{fingerprint}'"),
        order_by=["attributes.start_time DESC"], max_results=20,
    )
    for run in runs:
        if run.info.status != "FINISHED":
            return run
    raise RunError(f"--resume: no unfinished invocation of {model} on {protocol} with this configuration")


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
    resume: bool | str = False,
    storage: str | None = None,
    extra_tags: dict[str, str] | None = None,
    rerun: bool = False,
) -> InvocationResult:
    """Validate, record, dispatch, summarise. Raises RunError/ConfigError/TrackingError before
    anything is written when the request itself is wrong.

    ``resume`` (True or a parent run id) continues an earlier invocation: only its trials that are
    missing or failed run again, under the same parent run; orphaned RUNNING trials of a killed
    driver are marked KILLED first.

    Without ``rerun``, a (fold, seed) whose identical request already finished in the store is
    not run again: its earlier result counts (``skipped`` lists them); when every one finished,
    nothing is started or written and the earlier results are returned at once."""
    from reid_bench import tracking

    t_start = time.perf_counter()
    age = seconds_since_process_start()
    process_started = None if age is None else time.time() - age
    registry = get_registry()
    model_cls = registry.model(model)
    protocol_cls = registry.protocol(protocol)
    if model_cls.modality != protocol_cls.modality:
        raise RunError(f"model {model!r} works on {model_cls.modality} data; protocol {protocol!r} is {protocol_cls.modality}")
    check_trial_options(cpus_per_trial, gpus_per_trial, max_failures)
    check_device(device, use_ray)
    resolved = resolve_config(model, protocol, overrides, registry)
    fingerprint = resolved.fingerprint
    config_diff = resolved.difference(resolve_config(model, protocol, Overrides(), registry))
    fold_list = list(protocol_cls.folds)
    if folds:
        unknown = [f for f in folds if f not in fold_list]
        if unknown:
            raise RunError(f"protocol {protocol!r} has no fold {unknown[0]!r}; folds: {', '.join(fold_list)}")
        fold_list = folds
    try:
        seed_list = seeds_for(protocol_cls, seeds)
    except ValueError as exc:
        raise RunError(str(exc)) from None
    cache_dir = cache_dir if cache_dir in (None, "default") else str(Path(cache_dir).resolve())
    check_data(protocol_cls, resolved, data_root, cache_dir)
    uri = tracking_uri or tracking.default_tracking_uri()
    tracking.check_uri(uri, must_exist=bool(resume))
    requested = [TrialSpec(model=model, protocol=protocol, fold=f, seed=s).key for f in fold_list for s in seed_list]
    earlier = {} if resume or rerun else finished_earlier(uri, model, protocol, str(protocol_cls.version),
                                                          fingerprint, requested)
    if requested and len(earlier) == len(requested):
        states = []
        for f in fold_list:
            for s in seed_list:
                state = TrialState(TrialSpec(model=model, protocol=protocol, fold=f, seed=s))
                _earlier_state(state, earlier[state.spec.key], protocol_cls().metrics)
                states.append(state)
        parents = {r.data.tags.get("mlflow.parentRunId", "") for r in earlier.values()}
        wall = time.perf_counter() - t_start
        return InvocationResult(", ".join(sorted(parents)), next(iter(earlier.values())).info.experiment_id, uri, states,
                                summarise(states, protocol_cls().metrics), wall,
                                {"ray_start_s": 0.0, "mlflow_setup_s": 0.0, "dispatch_s": 0.0, "trial_compute_s": 0.0,
                                 "wall_s": wall}, skipped=list(requested))

    t_ray = time.perf_counter()
    if use_ray:
        init_ray(address)
        check_resources(cpus_per_trial, gpus_per_trial)
    else:
        check_local_gpus(gpus_per_trial)
    ray_start_s = time.perf_counter() - t_ray
    results_root = check_folder(results_dir or Path.cwd() / "reid-bench-results", "--results-dir")
    storage_root = check_storage(storage) if storage else None

    # Everything about the request is checked; from here on the store is written.
    client, experiment_id = tracking.connect(uri, create=not resume)
    previous = None
    if resume:
        if experiment_id is None:
            raise RunError(f"--resume: no reid-bench runs in {uri}")
        previous = find_resumable(client, experiment_id, model, protocol, fingerprint,
                                  resume if isinstance(resume, str) else None)
        expected_keys = json.loads(previous.data.tags.get("reid_bench.expected_trials", "[]"))
        fold_list = list(dict.fromkeys(k.rsplit("/seed", 1)[0] for k in expected_keys))
        seed_list = sorted({int(k.rsplit("/seed", 1)[1]) for k in expected_keys})

    invocation = (previous.data.tags.get("reid_bench.invocation") if previous else None) or \
        f"{model}-{protocol}-{time.strftime('%Y%m%d-%H%M%S')}"
    work_dir = results_root / invocation
    work_dir.mkdir(parents=True, exist_ok=True)
    all_specs = [
        TrialSpec(model=model, protocol=protocol, fold=f, seed=s,
                  overrides={"model": overrides.model, "probe": overrides.probe, "data": overrides.data},
                  data_root=str(Path(data_root).resolve()) if data_root else None, device=device, work_dir=str(work_dir),
                  threads=max(1, int(cpus_per_trial)),
                  cache_dir=cache_dir)
        for f in fold_list for s in seed_list
    ]
    trials = {s.key: TrialState(s) for s in all_specs}
    recorder = tracking.Recorder(client, experiment_id, uri)
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
        "reid_bench.config_diff": json.dumps(config_diff, sort_keys=True),
        # what was typed, unless it amounts to the defaults (then the row is "default")
        "reid_bench.config_label": json.dumps(overrides.as_flat() if config_diff else {}, sort_keys=True),
        **tracking.environment_tags(),
    }
    t_mlflow = time.perf_counter()
    if previous is not None:
        parent_id = previous.info.run_id
        recorder.reopen_parent(parent_id)
        for child in client.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'",
                                        max_results=10000):
            key = f"{child.data.tags.get('reid_bench.fold')}/seed{child.data.tags.get('reid_bench.seed')}"
            if child.info.status == "FINISHED" and key in trials:
                _earlier_state(trials[key], child, protocol_cls().metrics)
    else:
        parent_id = recorder.start_parent(
            f"{model}@{protocol}",
            dict(base_params, folds=json.dumps(fold_list), seeds=json.dumps(seed_list), dispatcher="ray" if use_ray else "in-process"),
            dict(base_tags, **{"reid_bench.expected_trials": json.dumps([s.key for s in all_specs]),
                               "reid_bench.folds": json.dumps(fold_list),
                               "reid_bench.invocation": invocation}, **(extra_tags or {})),
        )
    for key, run in earlier.items():
        _earlier_state(trials[key], run, protocol_cls().metrics)
    specs = [s for s in all_specs if trials[s.key].status != "FINISHED"]
    mlflow_setup_s = time.perf_counter() - t_mlflow
    view = LiveView(f"{model} on {protocol}  (MLflow run {parent_id[:8]})", list(trials.values()),
                    protocol_cls.main_score, enabled=show_progress)
    events = Coordinator(recorder, view, trials, base_params, base_tags)
    status = "FAILED"
    t_dispatch = time.perf_counter()
    overhead: dict[str, float] = {}
    try:
        with view:
            if specs and use_ray:
                dispatch_ray(specs, events, gpus_per_trial, cpus_per_trial, storage_root or str(work_dir / "ray"),
                             invocation if not previous else f"{invocation}-resume-{int(time.time())}", max_failures)
            elif specs:
                dispatch_in_process(specs, events, max_failures)
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
        began = [trials[s.key].started for s in specs if trials[s.key].started]
        if began and process_started is not None:
            # the fixed cost before any compute: interpreter, imports, checks, Ray, MLflow
            overhead["first_trial_s"] = min(began) - process_started
        try:
            curves: dict[str, list[list[float]]] = {}
            for state in trials.values():
                if state.result and state.result.get("cmc"):
                    curves.setdefault(f"fold {state.spec.fold}", []).append(state.result["cmc"])
            recorder.end_parent(status, summary, {**summary_metrics(summary),
                                                  **{f"time/{k}": v for k, v in overhead.items()}},
                                cmc_curves=curves, title=f"{model} on {protocol}")
        finally:
            recorder.terminate_open("KILLED" if status == "KILLED" else "FAILED")
    return InvocationResult(parent_id, experiment_id, uri, list(trials.values()), summary, overhead["wall_s"], overhead,
                            skipped=sorted(earlier))
