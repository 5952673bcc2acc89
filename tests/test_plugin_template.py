"""The example third-party plugin, installed for real into a temporary folder."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO, run_subprocess


@pytest.mark.xdist_group("plugin-template-build")  # pip builds inside the template's folder
def test_installed_template_appears_and_runs(tmp_path):
    target = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(target), str(REPO / "examples" / "plugin-template")],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(run_subprocess(["list", "--json"], extra_path=[target], check=True).stdout)
    models = {m["name"]: m["distribution"] for m in listed["models"]}
    assert models["joint-motion"] == "reid-bench-template 0.1.0"
    assert "d13" in models  # first-party plugins unaffected
    assert "template-gait" in [p["name"] for p in listed["protocols"]]

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = run_subprocess(["run", "--model", "joint-motion", "--protocol", "template-gait", "--no-ray", "--json",
                          "--tracking-uri", uri], extra_path=[target], cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    payload = json.loads(run.stdout)
    assert payload["ok"] and [(t["fold"], t["seed"]) for t in payload["trials"]] == [("A", 0), ("A", 1)]
    # the protocol fixes its population; --set data.identities is refused with the reason
    refused = run_subprocess(["run", "--model", "joint-motion", "--protocol", "template-gait", "--no-ray",
                              "--tracking-uri", uri, "--set", "data.identities=3"], extra_path=[target], cwd=tmp_path)
    assert refused.returncode == 2 and "fixes this option" in refused.stderr
