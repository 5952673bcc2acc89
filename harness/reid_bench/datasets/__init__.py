"""Shared machinery for loaders of on-disk datasets in their original release formats.

A loader subclasses ``FileDataset``: it lists the files it reads (``source_files``) and parses
them (``read``). The base class resolves the data root, names the folder it looked in when the
data is missing, fingerprints the sources for the cache, and carries the drop report (frames a
dataset's documented convention says to drop are counted, never silently skipped).
"""

from __future__ import annotations

import abc
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar, Iterable

from reid_bench.api import Dataset, Record


class DataFormatError(ValueError):
    """A file that does not follow its format; the message names the file and line."""

    def __init__(self, path: Path | str, message: str, line: int | None = None):
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")
        self.path = str(path)
        self.line = line


class DatasetNotFoundError(FileNotFoundError):
    pass


def data_files(candidates: Iterable[Path], what: str) -> list[Path]:
    """The candidates, paths named like data files, which must all be regular files (or links
    to one): a folder, a broken link or a device so named is an error, never silently skipped."""
    files = []
    for path in candidates:
        if path.is_file():
            files.append(path)
            continue
        kind = ("a folder" if path.is_dir() else "a broken symbolic link" if path.is_symlink()
                else "not a regular file")
        raise DataFormatError(path, f"named like {what}, but it is {kind}")
    return files


class FileDataset(Dataset):
    """A dataset read from ``root`` (``<data-root>/<dataset name>``)."""

    #: Folder name under the data root (defaults to the entry-point name given by the harness).
    folder: ClassVar[str] = ""
    #: Other folder names the data is commonly kept under (tried when the registered name is absent).
    folder_aliases: ClassVar[tuple[str, ...]] = ()

    def __init__(self, root: Path | None = None, options: Any = None) -> None:
        super().__init__(root, options)
        self.drops: Counter[str] = Counter()

    # -- what a loader implements
    @abc.abstractmethod
    def source_files(self) -> list[Path]:
        """Every file ``read`` will parse (sorted); an empty list means the data is absent."""

    @abc.abstractmethod
    def read(self) -> list[Record]: ...

    # -- what the harness calls
    def require_root(self) -> Path:
        if self.root is None:
            raise DatasetNotFoundError(
                f"{type(self).__name__} needs its data: pass --data-root (or set REID_BENCH_DATA) to a folder "
                f"that contains '{self.folder or 'the dataset folder'}'. Obtain it from: {self.obtain}"
            )
        if not self.root.is_dir():
            raise DatasetNotFoundError(f"dataset folder {self.root} does not exist. Obtain the data from: {self.obtain}")
        return self.root

    def load(self) -> list[Record]:
        self.require_root()
        if not self.source_files():
            raise DatasetNotFoundError(
                f"no {self.data_format or 'data'} files found under {self.root}. Obtain the data from: {self.obtain}"
            )
        self.drops = Counter()
        records = self.read()
        if not records:
            raise DataFormatError(self.root, "no usable samples were read")
        return records

    def checksum(self) -> str:
        from reid_bench.cache import fingerprint_files

        root = self.require_root()
        return fingerprint_files(root, self.source_files())

    def drop(self, reason: str, count: int = 1) -> None:
        """Count samples or frames dropped by the dataset's documented convention."""
        self.drops[reason] += count

    def drop_report(self) -> dict[str, int]:
        return dict(sorted(self.drops.items()))
