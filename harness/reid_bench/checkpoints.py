"""Checkpoints: a model's training state between epochs, and a fitted model to evaluate later.

One format serves both. A checkpoint is a folder holding ``state.pt`` (tensors and plain
values only, read back with ``torch.load(weights_only=True)``, so a file from elsewhere cannot
run code) and ``checkpoint.json`` (what it is: model, configuration, protocol, fold, seed, data
shape, versions, epoch, and the SHA-256 of ``state.pt``). A *training* checkpoint also holds the
optimisers, generators and RNG states a fit needs to continue bit for bit; a *model* checkpoint
(the final one, logged to MLflow) holds what ``embed`` needs and the RNG states after the fit.

Folders are written under a temporary name and renamed when complete, so a reader never sees a
half-written checkpoint; ``CheckpointFolder`` keeps the newest ``keep`` of them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

STATE_FILE = "state.pt"
META_FILE = "checkpoint.json"
FORMAT = "reid-bench.checkpoint/1"
PREFIX = "checkpoint_"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: the message names the file and what is wrong."""


@dataclass(frozen=True)
class CheckpointPolicy:
    """When a fit writes a training checkpoint: every ``every_epochs`` epochs or ``every_minutes``
    minutes since the last one, whichever comes first (0 switches a rule off), and after the last
    epoch. ``keep``: training checkpoints kept per trial."""

    every_epochs: int = 10
    every_minutes: float = 10.0
    keep: int = 2

    def __post_init__(self) -> None:
        if self.every_epochs < 0 or self.every_minutes < 0:
            raise ValueError("checkpoint intervals must be >= 0")
        if self.keep < 1:
            raise ValueError("at least one checkpoint must be kept")

    def due(self, epoch: int, last_epoch: int | None, last_time: float, now: float) -> bool:
        done = epoch + 1 - (0 if last_epoch is None else last_epoch + 1)
        if self.every_epochs and done >= self.every_epochs:
            return True
        return bool(self.every_minutes) and (now - last_time) >= 60.0 * self.every_minutes


# ------------------------------------------------------------------------------------- state


def capture(value: Any, where: str = "state") -> Any:
    """A picklable-by-``weights_only`` copy of ``value``: modules, optimisers and schedulers by
    their ``state_dict``, generators by their state, arrays as tensors, containers recursively."""
    import torch

    if isinstance(value, (torch.Tensor, bool, int, float, str)) or value is None:
        return value.detach().clone() if isinstance(value, torch.Tensor) else value
    if isinstance(value, torch.Generator):
        return {"__kind__": "torch_generator", "state": value.get_state()}
    if isinstance(value, np.random.Generator):
        return {"__kind__": "numpy_generator", "state": _json_safe(value.bit_generator.state)}
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TypeError(f"{where}: object arrays cannot be checkpointed")
        return {"__kind__": "ndarray", "value": torch.from_numpy(np.ascontiguousarray(value).copy())}
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "state_dict") and hasattr(value, "load_state_dict"):
        return {"__kind__": "state_dict", "state": value.state_dict()}
    if isinstance(value, dict):
        return {"__kind__": "dict", "items": {str(k): capture(v, f"{where}[{k!r}]") for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"__kind__": type(value).__name__, "items": [capture(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    raise TypeError(f"{where}: cannot checkpoint a {type(value).__name__}")


def restore(current: Any, saved: Any, where: str = "state") -> Any:
    """``saved`` (from :func:`capture`) put back into ``current`` where it is stateful (modules
    load strictly); returns the value to keep."""
    if not isinstance(saved, dict) or "__kind__" not in saved:
        return saved
    kind = saved["__kind__"]
    if kind == "torch_generator":
        current.set_state(saved["state"])
        return current
    if kind == "numpy_generator":
        current.bit_generator.state = _from_json_safe(saved["state"])
        return current
    if kind == "ndarray":
        return saved["value"].numpy().copy()
    if kind == "state_dict":
        if current is None or not hasattr(current, "load_state_dict"):
            raise CheckpointError(f"{where}: the checkpoint holds a state the model has no object for")
        _load_state_dict(current, saved["state"], where)
        return current
    if kind == "dict":
        base = current if isinstance(current, dict) else {}
        return {k: restore(base.get(k), v, f"{where}[{k!r}]") for k, v in saved["items"].items()}
    if kind in ("list", "tuple"):
        base = list(current) if isinstance(current, (list, tuple)) and len(current) == len(saved["items"]) else \
            [None] * len(saved["items"])
        items = [restore(c, v, f"{where}[{i}]") for i, (c, v) in enumerate(zip(base, saved["items"]))]
        return items if kind == "list" else tuple(items)
    raise CheckpointError(f"{where}: unknown state kind {kind!r}")


def _load_state_dict(target: Any, state: dict[str, Any], where: str) -> None:
    """A strict load, its failure as one line: which keys are missing or unexpected, which shape differs."""
    import torch

    if isinstance(target, torch.nn.Module):
        mine = target.state_dict()
        missing = sorted(set(mine) - set(state))
        unexpected = sorted(set(state) - set(mine))
        if missing or unexpected:
            parts = ([f"missing keys {', '.join(missing[:5])}"] if missing else []) + \
                    ([f"unexpected keys {', '.join(unexpected[:5])}"] if unexpected else [])
            raise CheckpointError(f"{where}: " + "; ".join(parts))
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and tuple(value.shape) != tuple(mine[key].shape):
                raise CheckpointError(f"{where}: {key} has shape {tuple(value.shape)} in the checkpoint, "
                                      f"{tuple(mine[key].shape)} in the model")
        target.load_state_dict(state, strict=True)
        return
    try:
        target.load_state_dict(state)
    except (KeyError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{where}: {str(exc).splitlines()[0]}") from None


def _json_safe(value: Any) -> Any:
    """numpy's bit-generator state: 128-bit integers as strings (``weights_only`` reads small ints)."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**62:
        return {"__bigint__": str(value)}
    return value


def _from_json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__bigint__"}:
            return int(value["__bigint__"])
        return {k: _from_json_safe(v) for k, v in value.items()}
    return value


def rng_state() -> dict[str, Any]:
    """The global generators a fit draws from: torch's, numpy's legacy one and Python's."""
    import torch

    kind, keys, pos, has_gauss, cached = np.random.get_state()
    out = {"torch": torch.get_rng_state(), "numpy": [kind, torch.from_numpy(keys.copy()), int(pos), int(has_gauss),
                                                     float(cached)],
           "python": _python_state(random.getstate())}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: dict[str, Any]) -> None:
    import torch

    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy(), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _python_state(state: tuple) -> list[Any]:
    version, internal, gauss = state
    return [version, list(internal), gauss]


# ------------------------------------------------------------------------------------- files


def write_checkpoint(folder: Path, state: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Write ``folder`` (``state.pt`` + ``checkpoint.json``) atomically: under a temporary name in
    the same parent, flushed, then renamed. An existing folder of that name is replaced."""
    import torch

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".tmp-{folder.name}-{os.getpid()}-{time.monotonic_ns()}"
    tmp.mkdir()
    try:
        with open(tmp / STATE_FILE, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        meta = dict(meta, format=FORMAT, sha256=file_sha256(tmp / STATE_FILE))
        meta["record_sha256"] = record_sha256(meta)
        with open(tmp / META_FILE, "w") as fh:
            json.dump(meta, fh, indent=1, sort_keys=True, default=str)
            fh.flush()
            os.fsync(fh.fileno())
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def record_sha256(meta: dict[str, Any]) -> str:
    """The hash of a checkpoint's record itself (everything but this hash), so that an edited
    record (another model name, layout or configuration) is refused like an edited state."""
    body = {k: v for k, v in meta.items() if k != "record_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def read_meta(folder: Path) -> dict[str, Any]:
    """``checkpoint.json`` of a checkpoint folder, or CheckpointError naming the file."""
    path = Path(folder) / META_FILE
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{folder}: not a reid-bench checkpoint (no {META_FILE})") from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a {FORMAT} file")
    if meta.get("record_sha256") != record_sha256(meta):
        raise CheckpointError(f"{path}: the record does not match its SHA-256 (changed after it was written)")
    return meta


def read_checkpoint(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(state, meta) of a checkpoint folder, the state's hash checked against the record: a file
    changed after it was written is refused, never loaded."""
    import pickle

    import torch

    folder = Path(folder)
    meta = read_meta(folder)
    path = folder / STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: missing")
    if file_sha256(path) != meta.get("sha256"):
        raise CheckpointError(f"{path}: content does not match the SHA-256 in {META_FILE} (changed after it was written)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        raise CheckpointError(f"{path}: cannot be read ({str(exc).splitlines()[0]})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a checkpoint state")
    return state, meta


class CheckpointFolder:
    """The training checkpoints of one trial in a local folder: ``checkpoint_<epoch>`` each,
    the newest ``keep`` kept (the layout Ray Tune's storage gives its checkpoints too)."""

    def __init__(self, root: Path, keep: int = 2):
        self.root = Path(root)
        self.keep = keep

    def entries(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        found = [p for p in self.root.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and (p / META_FILE).is_file()]
        return sorted(found, key=lambda p: p.name)

    def latest(self) -> Path | None:
        entries = self.entries()
        return entries[-1] if entries else None

    def save(self, epoch: int, state: dict[str, Any], meta: dict[str, Any]) -> Path:
        path = write_checkpoint(self.root / f"{PREFIX}{epoch:06d}", state, meta)
        for old in self.entries()[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        return path


def config_of(config: Any) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(config), default=str)) if dataclasses.is_dataclass(config) else {}


def prune(paths: Iterable[str]) -> None:
    """Remove local checkpoint folders a finished trial no longer needs (remote URIs are left)."""
    for path in paths:
        if "://" not in path:
            shutil.rmtree(path, ignore_errors=True)
