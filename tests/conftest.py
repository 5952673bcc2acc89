"""Shared fixtures: a private MLflow store per test and helpers to run the CLI."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# The test problems are tiny: one torch thread is as fast as two and never oversubscribes a
# 2-core CI machine; subprocesses (the real console entry point) inherit the same setting.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
# Small synthetic populations so CLI runs take seconds.
TINY_GAIT = ["--set", "data.identities=6", "--set", "data.train_sequences=2", "--set", "data.test_sequences=1"]


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    import torch

    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _harness_warnings_reach_caplog(monkeypatch):
    """The CLI prints the harness's warnings itself and stops them propagating; tests read them."""
    import logging

    monkeypatch.setattr(logging.getLogger("reid_bench"), "propagate", True)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Never touch the user's ~/.cache from tests."""
    monkeypatch.setenv("REID_BENCH_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def tracking_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch):
    """Invoke the Typer app in-process (the registry is reset first), from tmp_path."""
    from typer.testing import CliRunner

    from reid_bench.cli import app
    from reid_bench.registry import reset_registry

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def invoke(*args: str):
        reset_registry()
        return CliRunner().invoke(app, list(args), catch_exceptions=False)

    return invoke


def run_subprocess(args: list[str], extra_path: list[Path] | None = None, cwd: Path | None = None, check: bool = False):
    """The real console entry point in a fresh interpreter (entry points read from disk)."""
    env = dict(os.environ)
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join([str(p) for p in extra_path] + [env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-m", "reid_bench.cli", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def make_fake_distribution(root: Path, name: str, entry_points: dict[str, dict[str, str]], modules: dict[str, str]) -> Path:
    """A minimal installed distribution: a .dist-info folder plus its modules, on ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    info = root / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    lines = []
    for group, items in entry_points.items():
        lines.append(f"[{group}]")
        lines += [f"{k} = {v}" for k, v in items.items()]
        lines.append("")
    (info / "entry_points.txt").write_text("\n".join(lines))
    for module, source in modules.items():
        (root / f"{module}.py").write_text(source)
    return root


def mlflow_runs(uri: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("reid-bench")
    if exp is None:
        return client, []
    return client, client.search_runs([exp.experiment_id], max_results=1000)


def trial_context(tmp_path: Path, seed: int = 0, log: list | None = None):
    """A TrialContext for calling a model's fit directly; ``log`` collects (epoch, metrics)."""
    from reid_bench.api import TrialContext

    def report(epoch, **metrics):
        if log is not None:
            log.append((epoch, metrics))

    return TrialContext(device="cpu", seed=seed, checkpoint_dir=tmp_path / "ckpt", report=report)


def fits_by_precision(build, train, tmp_path: Path) -> dict:
    """``build(precision)`` fitted on ``train`` at float32 and at bfloat16, seed 0: per precision,
    the dtypes its modules' training forward passes returned, its training losses and the model."""
    import torch

    def collect(value, into: set) -> None:
        if isinstance(value, torch.Tensor):
            into.add(value.dtype)
        elif isinstance(value, (tuple, list)):
            for item in value:
                collect(item, into)

    fits = {}
    for precision in ("float32", "bfloat16"):
        model = build(precision)
        dtypes: set = set()
        handle = torch.nn.modules.module.register_module_forward_hook(
            lambda module, args, out: collect(out, dtypes) if module.training else None)
        log: list = []
        try:
            model.fit(train, trial_context(tmp_path, seed=0, log=log))
        finally:
            handle.remove()
        fits[precision] = (dtypes, [m["loss"] for _, m in log], model)
    return fits


def cloud_splits(options):
    """Train and query SampleSets of a synthetic cloud population (train labels contiguous)."""
    from reid_bench.samples import clouds_to_sampleset, label_map
    from reid_bench.synthetic.clouds import generate_clouds

    records = generate_clouds(options)
    train_recs = [r for r in records if r.subset == "train"]
    labels = label_map(r.person for r in train_recs)
    return (clouds_to_sampleset(train_recs, labels),
            clouds_to_sampleset([r for r in records if r.subset == "query"], labels))


# -------------------------------------------------------------------------------- Ray clusters
# Each runs in a process session of its own, so that tearing it down kills exactly its processes
# (never `ray stop`, which ends every Ray process on a shared machine).

_CLUSTER_SCRIPT = """
import sys
from ray.cluster_utils import Cluster
cpus = [int(x) for x in sys.argv[1:]]
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": cpus[0], "include_dashboard": False})
for n in cpus[1:]:
    cluster.add_node(num_cpus=n)
cluster.wait_for_nodes()
print("ADDRESS", cluster.address, flush=True)
sys.stdin.read()
cluster.shutdown()
"""


def _kill_session(proc: subprocess.Popen) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=60)


def _wait_for_line(proc: subprocess.Popen, marker: str, what: str) -> str:
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if marker in line:
            return line
    raise AssertionError(f"{what} ended before it was up:\n" + "".join(seen[-40:]))


def wait_for_store(proc: subprocess.Popen, db: Path, query: str, what: str, timeout: float = 300.0,
                   ready=lambda rows: bool(rows and rows[0][0])) -> list:
    """Poll a running command's sqlite MLflow store, read-only, until ``query``'s rows are
    ``ready`` (by default: a count above zero); returns them. An observable event, so a loaded
    machine only makes the wait longer. ``what`` names the event in the failure messages."""
    import sqlite3
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the command ended before {what}: {proc.communicate()[1][-3000:]}")
        if db.exists():
            try:
                with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=5) as con:
                    rows = con.execute(query).fetchall()
            except sqlite3.Error:  # the schema is still being created, or the driver is writing
                rows = []
            if ready(rows):
                return rows
        time.sleep(0.05)
    raise AssertionError(f"not in {timeout:.0f} s: {what}")


@contextlib.contextmanager
def ray_cluster(cpus_per_node: list[int], env: dict[str, str]):
    """A multi-node Ray cluster on this machine (``ray.cluster_utils``); yields its address."""
    proc = subprocess.Popen([sys.executable, "-c", _CLUSTER_SCRIPT, *map(str, cpus_per_node)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
    try:
        yield _wait_for_line(proc, "ADDRESS ", "the Ray cluster").split()[1]
    finally:
        _kill_session(proc)


@contextlib.contextmanager
def ray_start_head(env: dict[str, str], num_cpus: int = 0):
    """A head node as ``ray start --head`` leaves one behind on a host (it registers itself as
    the host's current cluster, which a plain ``ray.init()`` would join); yields its address."""
    ray_cli = Path(sys.executable).with_name("ray")
    proc = subprocess.Popen([str(ray_cli), "start", "--head", "--port=0", f"--num-cpus={num_cpus}",
                             "--include-dashboard=false", "--disable-usage-stats", "--block"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
    try:
        line = _wait_for_line(proc, "ray start --address=", "ray start --head")
        yield line.split("--address=")[1].strip().strip("'\"")
    finally:
        _kill_session(proc)


@pytest.fixture(scope="session")
def tiny_fold():
    """Four synthetic walkers: training windows (stride 3) and session-A test windows, for the
    sequence models' short fits."""
    from reid_bench.layouts import KINECT_V1_20
    from reid_bench.samples import label_map, windows_from_sequences
    from reid_bench.synthetic.skeletons import WalkerOptions, generate_walkers

    recs = generate_walkers(WalkerOptions(identities=4, train_sequences=2, test_sequences=1, min_frames=30, max_frames=36))
    train_recs = [r for r in recs if r.session == "train"]
    labels = label_map(r.person for r in train_recs)
    train = windows_from_sequences(train_recs, 6, 3, KINECT_V1_20, labels)
    test = windows_from_sequences([r for r in recs if r.session == "A"], 6, 6, KINECT_V1_20, labels)
    return train, test


def reload_saved(model, folder: Path):
    """The fitted model saved as ``run`` saves it (a checkpoint folder), then loaded into a fresh
    instance of its class: what ``reid-bench eval`` scores."""
    from reid_bench.checkpoints import read_checkpoint, write_checkpoint

    saved = write_checkpoint(Path(folder) / "saved-model", {"model": model.model_state()}, {"kind": "model"})
    state, _ = read_checkpoint(saved)
    fresh = type(model)(model.config, model.spec)
    fresh.load_model_state(state["model"])
    return fresh
