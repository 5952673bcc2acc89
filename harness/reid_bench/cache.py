"""Parsed-dataset cache: one ``.npz`` per (dataset, loader version, source fingerprint).

No pickle anywhere: records are stored as concatenated arrays plus offsets and unicode
metadata columns, loaded with ``allow_pickle=False``. Writes are atomic (temporary file, then
``os.replace``), so an interrupted write never leaves a corrupt entry; an unreadable entry is
treated as a miss and rebuilt.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from reid_bench.api import PointCloud, Record, SkeletonSequence

FORMAT_VERSION = "1"
log = logging.getLogger(__name__)
_SKELETON_FIELDS = ("layout", "sequence", "view", "condition", "session", "source")
_CLOUD_FIELDS = ("source", "subset", "domain")


def default_cache_dir() -> Path:
    env = os.environ.get("REID_BENCH_CACHE")
    if env:
        return Path(env).expanduser().resolve()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser().resolve() / "reid-bench"


def fingerprint_files(root: Path, files: Iterable[Path]) -> str:
    """Identity of a source tree: each file's relative path and a hash of its bytes.

    Size and modification time miss an edit that keeps both (a same-size change with its time
    restored, a copy that preserves times) and would serve stale data; the content hash costs
    one read of every byte, measured in ``benchmarks/bench_data_cache.py``.
    """
    digest = hashlib.blake2b(digest_size=16)
    prefix = len(str(root).rstrip(os.sep)) + 1
    for name in sorted(str(f) for f in files):
        with open(name, "rb") as fh:
            content = hashlib.file_digest(fh, lambda: hashlib.blake2b(digest_size=16)).hexdigest()
        digest.update(f"{name[prefix:]}\0{content}\n".encode())
    return digest.hexdigest()[:20]


def cache_path(cache_dir: Path, dataset: str, loader_version: str, checksum: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in dataset)
    return cache_dir / f"{safe}-v{loader_version}-{checksum}.npz"


def save_records(path: Path, records: Sequence[Record], extra: dict | None = None) -> None:
    """``extra`` (JSON-able, e.g. the loader's drop report) is stored next to the arrays."""
    import json

    if not records:
        raise ValueError("refusing to cache an empty dataset")
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(records[0], SkeletonSequence):
        arrays = _pack(records, "frames", _SKELETON_FIELDS, int_fields=("person",))
        arrays["kind"] = np.array("skeleton")
    else:
        arrays = _pack(records, "points", _CLOUD_FIELDS, int_fields=("person", "camera"))
        arrays["kind"] = np.array("pointcloud")
    arrays["format_version"] = np.array(FORMAT_VERSION)
    arrays["extra"] = np.array(json.dumps(extra or {}, sort_keys=True))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_records(path: Path) -> tuple[list[Record], dict] | None:
    """The cached records and their ``extra``, or None when the entry is missing or unreadable
    (the caller then parses the sources again and rewrites the entry)."""
    import json

    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["format_version"]) != FORMAT_VERSION:
                return None
            kind = str(z["kind"])
            data, offsets = z["data"], z["offsets"]
            extra = json.loads(str(z["extra"]))
            cols = {k: z[k] for k in z.files if k not in ("data", "offsets", "kind", "format_version", "extra")}
    except Exception as exc:  # truncated or foreign file: rebuild rather than fail
        log.warning("ignoring the unreadable dataset cache entry %s (%s); parsing the sources again", path, exc)
        return None
    out: list[Record] = []
    for i in range(len(offsets) - 1):
        chunk = data[offsets[i] : offsets[i + 1]]
        if kind == "skeleton":
            out.append(SkeletonSequence(chunk, person=int(cols["person"][i]),
                                        **{f: str(cols[f][i]) for f in _SKELETON_FIELDS}))
        else:
            out.append(PointCloud(chunk, person=int(cols["person"][i]), camera=int(cols["camera"][i]),
                                  **{f: str(cols[f][i]) for f in _CLOUD_FIELDS}))
    return out, extra


def _pack(records: Sequence[Record], attr: str, str_fields: tuple[str, ...], int_fields: tuple[str, ...]) -> dict[str, np.ndarray]:
    arrays = [getattr(r, attr) for r in records]
    offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(a) for a in arrays])
    packed = {"data": np.concatenate(arrays).astype(np.float32, copy=False), "offsets": offsets}
    for f in str_fields:
        packed[f] = np.array([str(getattr(r, f)) for r in records], dtype=np.str_)
    for f in int_fields:
        packed[f] = np.array([int(getattr(r, f)) for r in records], dtype=np.int64)
    return packed
