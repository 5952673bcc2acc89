"""Small torch helpers shared by model plugins (so each model does not carry its own copy)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def cpu_threads(n: int, device: str) -> Iterator[None]:
    """Run a block with ``n`` torch threads on CPU (0: leave torch's setting alone).

    Small networks on a 2-core machine run several times slower with two threads than with one
    when anything else competes for the cores; the previous setting is restored afterwards.
    """
    import torch

    if n <= 0 or not str(device).startswith("cpu"):
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def save_weights(module, folder: Path | None, filename: str) -> Path | None:
    """Best-effort checkpoint of the final weights into the trial's checkpoint folder."""
    import torch

    if folder is None:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / filename
        torch.save(module.state_dict(), path)
        return path
    except OSError:
        return None
