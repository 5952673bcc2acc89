"""benchmarks/gpu_check.sh: skips cleanly without a GPU, and every step works (on CPU, at toy sizes).

No CUDA path has run in CI; this keeps the one prepared GPU script from rotting between the
sessions that are lent a GPU machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"
STEPS = ("cuda-tests", "field-methods", "ognet", "smsge-paper", "metrics")


def _run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHON": sys.executable, "GPU_CHECK_OUT": str(tmp_path / "out"), **env}
    full.pop("OUT", None)
    return subprocess.run(["bash", str(SCRIPT)], cwd=tmp_path, env=full, capture_output=True, text=True, timeout=900)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present: the script would run")
def test_without_a_gpu_it_says_so_and_exits_zero(tmp_path):
    proc = _run(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"gpu_check: skipped: {sys.executable} sees no CUDA device (torch missing or CPU-only)"
    assert not (tmp_path / "out" / "steps.tsv").exists()  # nothing ran


def test_every_step_runs_on_cpu_from_a_private_install(tmp_path):
    proc = _run(tmp_path, GPU_CHECK_DEVICE="cpu", GPU_CHECK_SMOKE="1", GPU_CHECK_INSTALL="1")
    out = tmp_path / "out"
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "installing reid-bench and its plugins" in proc.stdout
    # the plugins' entry points come from the private install, not from this environment's copies
    assert (out / "site" / "reid_bench_smsge").is_dir()
    assert any(p.name.startswith("reid_bench_prototypes-") for p in (out / "site").glob("*.dist-info"))
    rows = [line.split("\t") for line in (out / "steps.tsv").read_text().splitlines()]
    assert [r[0] for r in rows] == list(STEPS) and all(r[1] == "0" for r in rows), rows
    table = proc.stdout.split("step           status  seconds", 1)[1]
    for name in STEPS:
        assert f"\n{name:<14}     ok" in table
    logs = {name: (out / f"{name}.log").read_text() for name in STEPS}
    assert "3 skipped" in logs["cuda-tests"]  # the CUDA tests were collected and skipped, none failed
    assert "lstm-1" in logs["field-methods"] and "anchor: nn.LSTM 2x256" in logs["field-methods"]
    assert "samples/s" in logs["ognet"]
    assert "1 / 1" in logs["smsge-paper"] and "released" in logs["smsge-paper"]
    assert "vs cpu: max |diff| cmc 0.00e+00" in logs["metrics"]
    assert "valid queries equal: True" in logs["metrics"]
