"""torchreid's Cython ``evaluate_cy``, built here from a checkout, as the anchor for ``evaluate_retrieval``.

torchreid's own fast path is ``torchreid/metrics/rank_cylib/rank_cy.pyx`` (KaiyangZhou/deep-person-reid);
its PyPI sdist (0.2.5) does not ship the ``.pyx``, so the benchmark takes the path of a checkout
(``--torchreid-src`` or ``$TORCHREID_SRC``) and compiles that file with Cython and the system C compiler
into ``build/bench-torchreid/<hash of the .pyx>/``. Cython goes into ``build/bench-torchreid/cython`` (pip
``--target``, the project's constraints), never into the project's venv. The extension is built against
this interpreter's numpy, so it loads into the benchmark's own process. Nothing of torchreid is copied
into the project: the checkout is read where it lies.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "build" / "bench-torchreid"

_SETUP = (
    "import numpy\n"
    "from Cython.Build import cythonize\n"
    "from setuptools import Extension, setup\n"
    "setup(name='rank_cy', ext_modules=cythonize([Extension('rank_cy', ['rank_cy.pyx'],"
    " include_dirs=[numpy.get_include()])], quiet=True), script_args=['build_ext', '--inplace'])\n"
)


def find_pyx(src: Path) -> Path:
    """The Cython ranking file of a torchreid checkout (either of the layouts it has had)."""
    for rel in ("torchreid/metrics/rank_cylib/rank_cy.pyx", "torchreid/reid/metrics/rank_cylib/rank_cy.pyx"):
        if (src / rel).is_file():
            return src / rel
    raise FileNotFoundError(f"{src}: no torchreid/metrics/rank_cylib/rank_cy.pyx; pass a checkout of "
                            "KaiyangZhou/deep-person-reid")


def build(src: Path, cache: Path = CACHE) -> Path:
    """Compile once per distinct ``.pyx``; returns the extension module's path."""
    pyx = find_pyx(src)
    out = cache / hashlib.sha256(pyx.read_bytes()).hexdigest()[:12]
    built = sorted(out.glob("rank_cy*.so"))
    if built:
        return built[0]
    tools = cache / "cython"
    if not (tools / "Cython").is_dir():
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target", str(tools), "cython",
                        "-c", str(ROOT / "constraints.txt")], check=True)
    work = out / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    shutil.copyfile(pyx, work / "rank_cy.pyx")  # a build input in build/, not a file of the project
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(tools), os.environ.get("PYTHONPATH")])))
    subprocess.run([sys.executable, "-c", _SETUP], cwd=work, env=env, check=True, capture_output=True)
    so = sorted(work.glob("rank_cy*.so"))
    if not so:
        raise RuntimeError(f"building {pyx} produced no extension in {work}")
    final = out / so[0].name
    so[0].replace(final)
    shutil.rmtree(work, ignore_errors=True)
    return final


def load(src: Path, cache: Path = CACHE) -> Callable:
    """``evaluate_cy(distmat, q_pids, g_pids, q_camids, g_camids, max_rank) -> (cmc, mAP)``."""
    path = build(src, cache)
    spec = importlib.util.spec_from_file_location("rank_cy", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.evaluate_cy


def source_from(arg: str | None) -> Path | None:
    value = arg or os.environ.get("TORCHREID_SRC")
    return Path(value).resolve() if value else None
