"""docs/writing-a-plugin.md's complete plugin, built from the page itself and run.

The files of the page's example are the fenced blocks preceded by ``<!-- guide-file: PATH -->``.
They are written to a temporary folder, installed (editable, as the page says) into a temporary
virtual environment that sees this environment's packages, and run there: the model must be
listed under the page's distribution, load, and finish a tiny run with a score. A snippet that
disagrees with another (an entry point naming a module or class the code does not define) fails
here.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

from conftest import REPO, TINY_GAIT

GUIDE = REPO / "docs" / "writing-a-plugin.md"
FENCE = r"```[A-Za-z0-9_-]*\n(.*?)^```"
GUIDE_FILE = re.compile(r"<!--\s*guide-file:\s*(\S+)\s*-->\s*\n" + FENCE, re.S | re.M)
GUIDE_COMMANDS = re.compile(r"<!--\s*guide-commands\s*-->\s*\n" + FENCE, re.S | re.M)


def guide_files() -> dict[str, str]:
    files: dict[str, str] = {}
    for path, text in GUIDE_FILE.findall(GUIDE.read_text()):
        assert path not in files, f"{GUIDE.name}: two snippets for {path}"
        files[path] = text
    return files


def guide_commands() -> list[list[str]]:
    blocks = GUIDE_COMMANDS.findall(GUIDE.read_text())
    assert len(blocks) == 1, f"{GUIDE.name}: expected one <!-- guide-commands --> block, found {len(blocks)}"
    return [shlex.split(line, comments=True) for line in blocks[0].splitlines() if line.strip()]


def write_plugin(root: Path) -> tuple[Path, dict]:
    files = guide_files()
    tomls = [p for p in files if Path(p).name == "pyproject.toml"]
    assert len(tomls) == 1, f"{GUIDE.name}: expected one guide-file pyproject.toml, found {tomls}"
    for rel, text in files.items():
        target = (root / rel).resolve()
        assert target.is_relative_to(root.resolve()), f"{GUIDE.name}: guide-file {rel} leaves its folder"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    project = root / Path(tomls[0]).parent
    return project, tomllib.loads(files[tomls[0]])


def make_venv(where: Path) -> Path:
    """A fresh venv whose site-packages adds this interpreter's (with its own .pth files, so
    the editable reid-bench, its plugins, pip and setuptools are all importable there)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True, timeout=300)
    paths = sysconfig.get_paths()
    ours = dict.fromkeys([paths["purelib"], paths["platlib"]])
    site_packages = where / Path(paths["purelib"]).relative_to(sys.prefix)
    assert site_packages.is_dir(), site_packages
    (site_packages / "_reid_bench_parent_env.pth").write_text(
        "".join(f"import site; site.addsitedir({p!r})\n" for p in ours))
    return where / "bin" / "python"


def test_guide_plugin_installs_and_runs(tmp_path):
    project, pyproject = write_plugin(tmp_path / "guide")
    for table in ("build-system", "project"):
        assert table in pyproject, f"the guide's pyproject.toml lacks [{table}]"
    meta = pyproject["project"]
    assert any(re.match(r"reid-bench\b", d) for d in meta.get("dependencies", [])), "the plugin must depend on reid-bench"
    entry_points = meta["entry-points"]
    models = list(entry_points.get("reid_bench.models", {}))
    protocols = list(entry_points.get("reid_bench.protocols", {}))
    assert models, "the guide's pyproject.toml registers no model"

    # the commands the guide tells a reader to type name the example's own plugins and folder
    commands = guide_commands()
    install = [c for c in commands if "install" in c]
    assert install and "-e" in install[0] and Path(install[0][-1]).name == project.name, install
    for command in commands:
        for flag, known in (("--model", models), ("--protocol", [*protocols, "synth-gait"])):
            if flag in command:
                assert command[command.index(flag) + 1] in known, (command, known)

    python = make_venv(tmp_path / "venv")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"

    def run(*args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(python), *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
        assert proc.returncode == 0, f"{args}: exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        return proc

    run("-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", "--no-cache-dir",
        "-e", str(project))

    def cli(*args: str) -> dict:
        return json.loads(run("-m", "reid_bench.cli", *args, "--json").stdout)

    distribution = f"{meta['name']} {meta['version']}"
    listed = cli("list")
    listed_models = {m["name"]: m["distribution"] for m in listed["models"]}
    for name in models:
        assert listed_models.get(name) == distribution, (name, listed_models.get(name))
    assert "d13" in listed_models  # the environment's own plugins are still there
    listed_protocols = {p["name"]: p["distribution"] for p in listed["protocols"]}
    for name in protocols:
        assert listed_protocols.get(name) == distribution, (name, listed_protocols.get(name))

    for name in [*models, *protocols]:  # each imports and passes the registry's checks
        info = cli("info", name)
        assert info["name"] == name and "parameters_error" not in info, info

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    for name in models:
        payload = cli("run", "--model", name, "--protocol", "synth-gait", "--no-ray", "--seeds", "1", "--fold", "A",
                      "--no-save-model", "--tracking-uri", uri, *TINY_GAIT)
        assert payload["ok"] and [t["status"] for t in payload["trials"]] == ["FINISHED"], payload["trials"]
        assert 0.0 <= payload["summary"]["A"]["rank1"]["mean"] <= 1.0
