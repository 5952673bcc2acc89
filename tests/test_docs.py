"""The documentation: links resolve inside the repository, figures show the committed boards."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted(REPO.glob("plugins/*/README.md")),
         REPO / "examples" / "plugin-template" / "README.md"]
LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve_inside_the_repository(page: Path):
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # an external URL
        path = (page.parent / target.split("#")[0]).resolve()
        assert path.is_relative_to(REPO), f"{page.name} links outside the repository: {target}"
        assert path.exists(), f"{page.name}: broken link {target}"


def test_docs_index_lists_every_page_in_reading_order():
    index = (REPO / "docs" / "README.md").read_text()
    pages = {p.name for p in (REPO / "docs").glob("*.md")} - {"README.md"}
    assert pages <= set(LINK.findall(index)), pages - set(LINK.findall(index))


def _docs_images():
    import importlib.util

    spec = importlib.util.spec_from_file_location("docs_images", REPO / "tools" / "docs_images.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_docs_figures_show_the_committed_boards():
    """Each figure was drawn from the committed files it shows (their SHA-256 when it was made),
    the image is the one recorded, and the sentences about it say what the committed board says.
    After a board changes: make docs-images."""
    images = _docs_images()
    manifest = json.loads(images.MANIFEST.read_text())
    shown = set(re.findall(r"\]\((?:\.\./docs/)?img/([\w.-]+\.png)\)", "".join(
        p.read_text() for p in (REPO / "docs").glob("*.md"))))
    assert shown and shown <= set(manifest), shown - set(manifest)  # every figure the docs show is made by the script
    for name, entry in manifest.items():
        assert images.sha256(images.IMG / name) == entry["sha256"], f"docs/img/{name} is not the image the script made"
        if name in images.SOURCES:
            assert entry["sources"] == images.source_hashes(name), (
                f"docs/img/{name} shows a board that has changed since: run make docs-images")
    for rel in images.TEXT_DOCS:
        path = REPO / rel
        assert "<!-- figure-text:" in path.read_text()
        assert path.read_text() == images.docs_text(path), f"{rel}: the figure text is stale: run make docs-images"
