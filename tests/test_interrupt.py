"""Ctrl-C during a run leaves no MLflow run RUNNING."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from conftest import TINY_GAIT, mlflow_runs


def test_sigint_marks_runs_killed(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "reid_bench.cli", "run", "--model", "gait-lstm", "--protocol", "synth-gait",
         "--no-ray", "--tracking-uri", uri, "--set", "epochs=500", *TINY_GAIT],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        seen = []
        for line in proc.stderr:  # the non-terminal progress log: one line per trial event
            seen.append(line)
            if "running" in line:
                break
        else:
            raise AssertionError("the run ended before a trial started:\n" + "".join(seen))
        time.sleep(2.0)  # inside fit() by now
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr
    _, runs = mlflow_runs(uri)
    assert runs and all(r.info.status == "KILLED" for r in runs), [(r.info.run_name, r.info.status) for r in runs]
