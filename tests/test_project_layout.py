"""The project's layout promises: import paths equal file paths, plugins are distributions of
their own, the core knows no plugin and works without any of them."""

from __future__ import annotations

import ast
import importlib
import json
import os
import pkgutil
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from conftest import REPO

CORE_ROOT = REPO / "harness"
PLUGIN_DIRS = sorted(p.parent for p in (REPO / "plugins").glob("*/pyproject.toml"))


def _plugin_meta(folder: Path) -> dict:
    return tomllib.loads((folder / "pyproject.toml").read_text())


def _walk(package: str) -> list[str]:
    """Every module of an installed package, the package included."""
    pkg = importlib.import_module(package)
    names = [package]
    names += [m.name for m in pkgutil.walk_packages(pkg.__path__, prefix=f"{package}.")]
    return names


def _expected_file(root: Path, module: str, is_package: bool) -> Path:
    parts = module.split(".")
    return root.joinpath(*parts, "__init__.py") if is_package else root.joinpath(*parts[:-1], parts[-1] + ".py")


def test_first_party_plugin_folders_exist():
    assert {p.name for p in PLUGIN_DIRS} >= {"baselines", "smsge", "ognet"}


@pytest.mark.parametrize("root,package", [(CORE_ROOT, "reid_bench")] + [
    (folder, f"reid_bench_{folder.name}") for folder in PLUGIN_DIRS])
def test_every_import_path_equals_its_file_path(root, package):
    modules = _walk(package)
    assert len(modules) > 1, f"{package} has no modules"
    for name in modules:
        module = importlib.import_module(name)
        is_package = hasattr(module, "__path__")
        assert Path(module.__file__).resolve() == _expected_file(root, name, is_package).resolve(), name


def test_root_pyproject_names_no_plugin():
    text = (REPO / "pyproject.toml").read_text()
    meta = tomllib.loads(text)
    groups = meta["project"].get("entry-points", {})
    # the core registers only its own objects: datasets, protocols, layouts and the control rows
    assert all(v.startswith("reid_bench.") for group in groups.values() for v in group.values())
    assert set(groups.get("reid_bench.models", {})) == {"control-chance", "control-raw"}
    for folder in PLUGIN_DIRS:
        assert f"reid_bench_{folder.name}" not in text
    assert "plugins/" not in text


def _code_strings(path: Path) -> list[tuple[int, str]]:
    """The string constants of a module's code, its docstrings left out."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_core_code_uses_no_model_plugin_name():
    """A model plugin's entry-point name is no key in the core: published numbers are keyed by
    the method's name in the literature and reach a model through its ``published_as``."""
    models = {name for folder in PLUGIN_DIRS
              for name in _plugin_meta(folder)["project"].get("entry-points", {}).get("reid_bench.models", {})}
    assert {"smsge", "ognet", "d13", "transg"} <= models
    found = [f"{path.relative_to(REPO)}:{line}: {value!r}" for path in sorted((CORE_ROOT / "reid_bench").rglob("*.py"))
             for line, value in _code_strings(path) if value in models]
    assert found == []


@pytest.mark.parametrize("folder", PLUGIN_DIRS, ids=lambda p: p.name)
def test_each_plugin_folder_is_a_distribution(folder):
    meta = _plugin_meta(folder)
    package = f"reid_bench_{folder.name}"
    assert meta["project"]["name"] == f"reid-bench-{folder.name}"
    assert meta["tool"]["setuptools"]["packages"] == [package]
    assert (folder / package / "__init__.py").is_file()
    readme = (folder / "README.md").read_text()
    headings = [line.lower() for line in readme.splitlines() if line.startswith("## ")]
    assert any("switches" in h for h in headings) and any("released code" in h for h in headings), (
        f"{folder.name}/README.md lacks a section on its released code or its switches")
    targets = [v for group in meta["project"]["entry-points"].values() for v in group.values()]
    assert targets and all(t.startswith(package + ".") for t in targets)
    # the installed distribution is this folder's (its entry points are the ones read at run time)
    from importlib.metadata import distribution

    installed = {ep.name: ep.value for ep in distribution(meta["project"]["name"]).entry_points}
    assert installed == {k: v for group in meta["project"]["entry-points"].values() for k, v in group.items()}


def test_the_install_command_names_every_plugin_folder():
    lines = [ln.strip() for ln in (REPO / "requirements.txt").read_text().splitlines()]
    editable = {ln.removeprefix("-e ").strip() for ln in lines if ln.startswith("-e ")}
    assert ".[test]" in editable
    assert editable - {".[test]"} == {f"plugins/{p.name}" for p in PLUGIN_DIRS}
    assert "-r requirements.txt" in (REPO / "Makefile").read_text()


def _import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> modules of the same package it imports, at any depth of the source (lazy too)."""
    files = {}
    for path in (root / package).rglob("*.py"):
        rel = path.relative_to(root).with_suffix("").parts
        files[".".join(rel[:-1] if rel[-1] == "__init__" else rel)] = path
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                graph[name] |= {a.name for a in node.names if a.name in files}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join(parent + ([base] if base else []))
                for alias in node.names:
                    target = f"{base}.{alias.name}"
                    if target in files:
                        graph[name].add(target)
                    elif base in files and base != name:
                        graph[name].add(base)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    seen: dict[str, int] = {}
    found: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        seen[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if seen.get(nxt) == 1:
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in seen:
                visit(nxt, stack)
        stack.pop()
        seen[node] = 2

    for start in sorted(graph):
        if start not in seen:
            visit(start, [])
    return found


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c", "a"]]


@pytest.mark.parametrize("root,package", [(CORE_ROOT, "reid_bench")] + [
    (folder, f"reid_bench_{folder.name}") for folder in PLUGIN_DIRS])
def test_no_import_cycles(root, package):
    graph = _import_graph(root, package)
    assert "reid_bench.api" in graph or package != "reid_bench"
    assert _cycles(graph) == []


@pytest.mark.xdist_group("plugin-template-build")  # pip builds inside the template's folder
def test_core_alone_runs_a_third_party_plugin(tmp_path):
    """The core and the template installed for real, next to the dependencies but none of plugins/."""
    site_packages = Path(next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()))
    deps = tmp_path / "deps"  # the environment's third-party packages, minus every reid-bench distribution
    deps.mkdir()
    for entry in site_packages.iterdir():
        if not entry.name.lower().replace("-", "_").startswith(("reid_bench", "__editable__")):
            (deps / entry.name).symlink_to(entry)
    source = tmp_path / "core-source"  # a copy, so that building the wheel writes nothing into the repo
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(CORE_ROOT / "reid_bench", source / "harness" / "reid_bench",
                    ignore=shutil.ignore_patterns("__pycache__"))
    site = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(site), str(source), str(REPO / "examples" / "plugin-template")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert install.returncode == 0, install.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MLFLOW_TRACKING_URI")}
    env |= {"PYTHONPATH": f"{site}{os.pathsep}{deps}", "PYTHONNOUSERSITE": "1"}

    def cli(*args: str) -> subprocess.CompletedProcess:
        # -S: the environment's own site-packages (with the first-party plugins) stays off sys.path
        return subprocess.run([sys.executable, "-S", "-m", "reid_bench.cli", *args], capture_output=True,
                              text=True, env=env, cwd=tmp_path, timeout=600)

    where = subprocess.run([sys.executable, "-S", "-c", "import reid_bench, importlib.util as u; "
                            "print(reid_bench.__file__, u.find_spec('reid_bench_smsge'))"],
                           capture_output=True, text=True, env=env, timeout=120)
    assert where.stdout.split() == [str(site / "reid_bench" / "__init__.py"), "None"], where.stderr

    listed = cli("list", "--json")
    assert listed.returncode == 0, listed.stderr
    catalogue = json.loads(listed.stdout)
    assert [m["name"] for m in catalogue["models"]] == ["control-chance", "control-raw", "joint-motion"]
    assert {"synth-gait", "ias", "market3d", "template-gait"} <= {p["name"] for p in catalogue["protocols"]}
    plugins = cli("plugins", "--json")
    assert plugins.returncode == 0, plugins.stderr
    entries = json.loads(plugins.stdout)
    assert all(e["loaded"] for e in entries), [e for e in entries if not e["loaded"]]
    assert {e["distribution"] for e in entries} == {"reid-bench", "reid-bench-template"}

    info = cli("info", "joint-motion", "--json")
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["config"] == {"use_speed": True, "eps": 1e-6}

    run = cli("run", "--model", "joint-motion", "--protocol", "template-gait", "--no-ray", "--json",
              "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert run.returncode == 0, run.stderr
    payload = json.loads(run.stdout)
    assert payload["ok"] and [(t["fold"], t["seed"]) for t in payload["trials"]] == [("A", 0), ("A", 1)]


def test_mlflow_tag_names_are_spelled_once():
    """Every tag name lives in ``tracking.Tag``: a module that spelled one itself could drift from
    what the others write (and existing stores hold)."""
    from reid_bench.tracking import Tag

    names = {v for k, v in vars(Tag).items() if k.isupper() and isinstance(v, str)} | set(Tag.VERSIONS.values())
    spelled = []
    for path in sorted((CORE_ROOT / "reid_bench").rglob("*.py")):
        if path.name == "tracking.py" and path.parent.name == "reid_bench":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and (
                    node.value in names or Tag.DATASET_CHECKSUM in node.value):
                spelled.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value!r}")
    assert spelled == []
