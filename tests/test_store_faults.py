"""The tracking store fails in the middle of a run: a real MLflow server on loopback killed while a
trial runs, and a real small file system that fills up. The run ends within seconds with one line
naming the store and the cause, keeps the result it could not record, and ``--resume`` records it
once the store is back, leaving nothing RUNNING."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import TINY_GAIT, make_fake_distribution, mlflow_runs

# D13 that says when it fits and waits for a go-ahead file: the test stops the store meanwhile.
GATED = '''
import os
import time
from pathlib import Path

from reid_bench_handcrafted.d13 import D13


class Gated(D13):
    def fit(self, train, ctx):
        gate = Path(os.environ["GATE_DIR"])
        (gate / "fitting").write_text("fitting")
        deadline = time.monotonic() + 600
        while not (gate / "go").exists():
            if time.monotonic() > deadline:
                raise RuntimeError("no go-ahead")
            time.sleep(0.05)
        super().fit(train, ctx)
'''


@pytest.fixture
def gated(tmp_path):
    site = make_fake_distribution(tmp_path / "site", "gated-plugin", {"reid_bench.models": {"gated": "gated_mod:Gated"}},
                                  {"gated_mod": GATED})
    gate = tmp_path / "gate"
    gate.mkdir()
    env = {**os.environ, "GATE_DIR": str(gate), "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    env.pop("MLFLOW_TRACKING_URI", None)
    return gate, env


def _args(uri: str, tmp_path: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "reid_bench.cli", "run", "--model", "gated", "--protocol", "synth-gait", "--fold",
            "A", "--seeds", "1", "--tracking-uri", uri, "--results-dir", str(tmp_path / "results"), *TINY_GAIT, *extra]


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended first: {proc.communicate()[1][-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear")
        time.sleep(0.05)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_server(tmp_path: Path, port: int) -> subprocess.Popen:
    """``mlflow server`` on loopback over a sqlite file in ``tmp_path`` (kept across restarts)."""
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
                             f"sqlite:///{tmp_path / 'server.db'}", "--default-artifact-root",
                             (tmp_path / "artifacts").as_uri(), "--host", "127.0.0.1", "--port", str(port),
                             "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, cwd=tmp_path)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise AssertionError("mlflow server did not start")
            time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError("mlflow server did not answer in time")


def _stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)


def _one_error_line(stderr: str) -> str:
    """The run's one error line (its trials' progress lines aside), and no traceback."""
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr[:3000] + stderr[-1000:]
    return errors[0]


@pytest.mark.parametrize("use_ray", [False, True], ids=["no-ray", "ray"])
def test_a_server_that_dies_mid_run_ends_it_at_once_and_resume_records_the_kept_result(tmp_path, gated, use_ray):
    gate, env = gated
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    server = _start_server(tmp_path, port)
    try:
        run = subprocess.Popen(_args(uri, tmp_path, *([] if use_ray else ["--no-ray"])), cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        _wait_for(gate / "fitting", run)
    finally:
        _stop(server)
    t0 = time.monotonic()
    (gate / "go").write_text("go")
    try:
        _, stderr = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert run.returncode == 1 and time.monotonic() - t0 < 90, stderr[-3000:]
    line = _one_error_line(stderr)
    assert f"tracking server {uri} stopped answering during the run: Connection refused" in line
    pending = list((tmp_path / "results").rglob("pending/A_seed0.json"))
    assert pending and f"kept in {pending[0].parent}" in line
    if use_ray:
        return  # recording what was kept does not depend on the dispatcher: the in-process case checks it

    server = _start_server(tmp_path, port)
    try:
        (gate / "fitting").unlink()
        resumed = subprocess.run(_args(uri, tmp_path, "--no-ray", "--resume", "--json"), cwd=tmp_path, env=env,
                                 capture_output=True, text=True, timeout=600)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert not (gate / "fitting").exists()  # recorded from what was kept, not fitted again
        assert [t["status"] for t in json.loads(resumed.stdout)["trials"]] == ["FINISHED"]
        assert not pending[0].exists()
        _, runs = mlflow_runs(uri)
        assert all(r.info.status != "RUNNING" for r in runs)
        finished = [r for r in runs if r.data.tags.get("reid_bench.kind") == "trial" and r.info.status == "FINISHED"]
        assert len(finished) == 1 and "rank1" in finished[0].data.metrics
    finally:
        _stop(server)


def test_a_store_whose_disk_fills_mid_run_ends_it_in_one_line_and_keeps_the_result(tmp_path, gated):
    gate, env = gated
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a small file system here")
    try:
        uri = f"sqlite:///{mount / 'mlflow.db'}"
        run = subprocess.Popen(_args(uri, tmp_path, "--no-ray"), cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
        _wait_for(gate / "fitting", run)
        filler = mount / "filler"
        with open(filler, "wb") as fh:  # the store's disk is full now
            try:
                while True:
                    fh.write(b"\0" * 65536)
                    fh.flush()
            except OSError:
                pass
        (gate / "go").write_text("go")
        _, stderr = run.communicate(timeout=300)
        assert run.returncode == 1, stderr[-3000:]
        line = _one_error_line(stderr)
        assert f"tracking store {uri} stopped answering during the run" in line
        assert "full" in line or "No space left" in line
        pending = list((tmp_path / "results").rglob("pending/A_seed0.json"))
        assert pending

        filler.unlink()
        (gate / "fitting").unlink()
        resumed = subprocess.run(_args(uri, tmp_path, "--no-ray", "--resume", "--json"), cwd=tmp_path, env=env,
                                 capture_output=True, text=True, timeout=600)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert not (gate / "fitting").exists() and not pending[0].exists()
        _, runs = mlflow_runs(uri)
        assert all(r.info.status != "RUNNING" for r in runs)
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)
