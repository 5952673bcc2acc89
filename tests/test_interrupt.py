"""Ctrl-C during a run ends it KILLED (exit 130), in both dispatch paths, and --resume completes it;
SIGTERM, a scheduler's or a container runtime's stop, does the same with exit 143."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from conftest import TINY_GAIT, mlflow_runs, wait_for_store
from reid_bench.leaderboard import build_leaderboards


def _interrupt(args, cwd, db, sig=signal.SIGINT) -> subprocess.CompletedProcess:
    # The child starts with SIGINT at its default, as from an interactive shell: a suite launched as a
    # background job (`cmd &` without job control) inherits SIGINT ignored, and Python then keeps it so.
    proc = subprocess.Popen([sys.executable, "-m", "reid_bench.cli", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        wait_for_store(proc, db, "SELECT count(*) FROM metrics WHERE key LIKE 'train/%'", "a trial reported an epoch")
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(args, proc.returncode, stdout, stderr)


def _statuses(uri):
    _, runs = mlflow_runs(uri)
    return sorted((r.data.tags.get("reid_bench.kind"), r.info.status) for r in runs)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_stop_signal_marks_runs_killed(tmp_path, sig, code):
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    done = _interrupt(["run", "--model", "gait-lstm", "--protocol", "synth-gait", "--no-ray", "--tracking-uri", uri,
                       "--set", "epochs=500", *TINY_GAIT], tmp_path, db, sig)
    assert done.returncode == code, done.stderr[-2000:]
    # folds A and B learn on the same training session: one fit, both trials running when stopped
    assert _statuses(uri) == [("invocation", "KILLED"), ("trial", "KILLED"), ("trial", "KILLED")]


@pytest.mark.ray
def test_sigint_on_ray_then_resume_completes_the_board(tmp_path):
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    args = ["run", "--model", "gait-lstm", "--protocol", "synth-gait", "--fold", "A", "--seeds", "2",
            "--tracking-uri", uri, "--set", "epochs=100", *TINY_GAIT]
    done = _interrupt(args, tmp_path, db)
    assert done.returncode == 130, done.stderr[-2000:]
    statuses = _statuses(uri)
    assert ("invocation", "KILLED") in statuses and not any(s == "RUNNING" for _, s in statuses), statuses
    assert any(kind == "trial" and s == "KILLED" for kind, s in statuses)

    resumed = subprocess.run([sys.executable, "-m", "reid_bench.cli", *args, "--resume"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    _, runs = mlflow_runs(uri)
    finished = sorted(r.data.tags["reid_bench.seed"] for r in runs
                      if r.data.tags.get("reid_bench.kind") == "trial" and r.info.status == "FINISHED")
    assert finished == ["0", "1"]
    build_leaderboards(tmp_path / "lb", tmp_path / "results", uri)
    row = [line for line in (tmp_path / "lb" / "synth-gait.md").read_text().splitlines() if "| gait-lstm |" in line]
    assert len(row) == 1 and "| 2/2, protocol 3 |" in row[0] and "incomplete" not in row[0]


@pytest.mark.ray
def test_sigterm_on_ray_ends_the_runs_killed(tmp_path):
    """ray.init installs a SIGTERM handler that only exits; the command's own must win, or the
    runs would stay RUNNING in the store."""
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    done = _interrupt(["run", "--model", "gait-lstm", "--protocol", "synth-gait", "--fold", "A", "--tracking-uri", uri,
                       "--set", "epochs=200", *TINY_GAIT], tmp_path, db, signal.SIGTERM)
    assert done.returncode == 143, done.stderr[-2000:]
    statuses = _statuses(uri)
    assert ("invocation", "KILLED") in statuses and not any(s == "RUNNING" for _, s in statuses), statuses


@pytest.fixture
def ctrl_c_raises():
    """Python's own Ctrl-C handler, as in a terminal: a suite started in the background by a
    non-interactive shell inherits SIGINT ignored, and an ignored signal stays ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_inside_a_store_call_lands_after_the_call(tmp_path, ctrl_c_raises):
    """Ctrl-C halfway through an MLflow write: the write completes (no SQLite lock is left held
    by a session never committed) and the interrupt is raised as soon as the call returns."""
    from mlflow.tracking import MlflowClient

    from reid_bench import tracking

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client, experiment_id = tracking.connect(uri)
    run_id = client.create_run(experiment_id).info.run_id
    real = client._client.log_metric

    def interrupted_halfway(*args, **kwargs):
        # raise() delivers to this thread before it returns (kill() to the process may reach another
        # thread later, after the call, which made this test fail on a loaded machine)
        signal.raise_signal(signal.SIGINT)
        return real(*args, **kwargs)

    client._client.log_metric = interrupted_halfway
    with pytest.raises(KeyboardInterrupt):
        client.log_metric(run_id, "written", 1.0)
    other = MlflowClient(tracking_uri=uri)  # another connection writes at once: nothing is locked
    other.log_metric(run_id, "after", 2.0)
    other.set_terminated(run_id, "KILLED")
    assert other.get_run(run_id).data.metrics == {"written": 1.0, "after": 2.0}
