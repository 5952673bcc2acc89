"""The preprocessed ``.npy`` layout that SM-SGE's released code reads (``utils/process_i.py``).

SM-SGE (and its siblings AGE/CAGE/SPC-MGR) ship datasets already cut into windows of ``f``
skeletons: per split, one array per coordinate holding the windows' frames one after the
other (``[N * f, J]``), plus ``frame_id_*.npy`` with the person of each window. The windows
cannot be joined back into recordings (consecutive windows of a person may come from
different recordings), so each window becomes one record of ``f`` frames whose ``session``
is its split. ``ids_*.npy`` (a pickled dict person -> window indices, built from the same
labels) is never opened: ``frame_id`` holds the same information as a plain integer array.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reid_bench.api import SkeletonSequence
from reid_bench.config import PositiveInt
from reid_bench.datasets import DataFormatError, FileDataset
from reid_bench.datasets.casia_b import CASIA_VIEWS, load_numeric_npy
from reid_bench.layouts import CASIA_14, KINECT_V1_20, KINECT_V2_25

#: Dataset name in SM-SGE's folders -> skeleton layout of its windows.
DATASET_LAYOUTS = {
    "IAS": KINECT_V1_20,
    "KGBD": KINECT_V1_20,
    "BIWI": KINECT_V1_20,
    "KS20": KINECT_V2_25,
    "CASIA_B": CASIA_14,
    "CASIA_B_match": CASIA_14,
}
#: Test splits stored side by side in one ``<DS>_test_npy_data`` folder, by file-name tag.
IAS_TEST_SPLITS = ("A", "B")
#: CASIA-B condition-matching (CME) layout: one test sub-folder per walking condition.
CME_CONDITIONS = ("nm", "bg", "cl")
COORDINATES = ("x", "y", "z")


@dataclass
class SmsgeNpyOptions:
    """``dataset_name``: the folder under ``Datasets/`` (SM-SGE's ``--dataset``: IAS, KGBD, KS20,
    BIWI, CASIA_B for the cross-view data, CASIA_B_match for the condition-matching data; not
    ``dataset``, which is the harness's own argument when it loads data). ``frames``: the
    window length f (the ``<f>`` folder). ``view``: CASIA_B only, the cross-view folder
    ``view_<k>`` (k = 0..10, view k*18 degrees) used as the test view."""

    dataset_name: str = "IAS"
    frames: PositiveInt = 6
    view: int | None = None


@dataclass(frozen=True)
class _Split:
    session: str
    folder: Path
    coordinate_files: tuple[Path, Path, Path]
    label_file: Path
    view: str = ""
    condition: str = ""


class SmsgeNpy(FileDataset):
    def skeleton_layout(self) -> str | None:
        layout = DATASET_LAYOUTS.get(self.options.dataset_name)
        return None if layout is None else layout.name

    """SM-SGE's preprocessed windows: ``Datasets/<DS>/<f>/<DS>_{train,test}_npy_data``."""

    modality = "skeleton"
    folder = "smsge-npy"
    options_class = SmsgeNpyOptions
    loader_version = "1"
    description = (
        "Skeleton windows as preprocessed and released for SM-SGE (IAS-Lab, KGBD, KS20, BIWI, CASIA-B 3D "
        "poses): each window of f frames is one record, session = its split (train, test; IAS: A, B; "
        "CASIA_B_match: nm, bg, cl)"
    )
    data_format = (
        "<root>[/Datasets]/<DS>/<f>/[view_<k>/]<DS>_train_npy_data/source_{x,y,z}_<DS>_<f>.npy and "
        "frame_id_<DS>_<f>.npy; <DS>_test_npy_data/t_source_{x,y,z}_<DS>_<f>.npy and frame_id_<DS>_<f>.npy "
        "(IAS: t_source_{x,y,z}_IAS-A_<f>.npy / frame_id_IAS-A_<f>.npy and the same for -B; CASIA_B_match: "
        "CASIA_B_test_npy_data/<nm|bg|cl>/t_source_{x,y,z}_CASIA_B_<f>.npy). Coordinate arrays are "
        "[N*f, J] (or [N, f, J]) with J = 20 (IAS, KGBD, BIWI), 25 (KS20) or 14 (CASIA-B); frame_id is the "
        "integer person of each of the N windows. ids_*.npy (pickles) and target_* (reversed copies) are "
        "not read."
    )
    license = "as the underlying dataset (IAS-Lab, KGBD, KS20, BIWI, CASIA-B); SM-SGE code: MIT"
    citation = (
        "H. Rao, X. Hu, J. Cheng, B. Hu. SM-SGE: A Self-Supervised Multi-Scale Skeleton Graph Encoding "
        "Framework for Person Re-Identification. ACM MM 2021."
    )
    obtain = (
        "the links in https://github.com/Kali-Hac/SM-SGE#datasets-and-models (IAS, KGBD; KS20 and CASIA-B "
        "on request / the CASIA-B CVE link); unzip so that <data-root>/smsge-npy/Datasets/<DS>/<f>/ exists"
    )

    # -- where things are
    def _datasets_dir(self) -> Path:
        root = self.require_root()
        return root / "Datasets" if (root / "Datasets").is_dir() else root

    def _check_options(self) -> SmsgeNpyOptions:
        opts = self.options
        if opts.dataset_name not in DATASET_LAYOUTS:
            raise ValueError(f"smsge-npy: unknown dataset_name {opts.dataset_name!r}; expected one of {', '.join(DATASET_LAYOUTS)}")
        if int(opts.frames) < 1:
            raise ValueError(f"smsge-npy: frames must be positive, got {opts.frames}")
        if opts.view is not None:
            if opts.dataset_name != "CASIA_B":
                raise ValueError("smsge-npy: 'view' selects a CASIA_B cross-view folder; other datasets have none")
            if not 0 <= int(opts.view) < len(CASIA_VIEWS):
                raise ValueError(f"smsge-npy: view must be 0..{len(CASIA_VIEWS) - 1}, got {opts.view}")
        return opts

    def _splits(self) -> list[_Split]:
        opts = self._check_options()
        ds, f = opts.dataset_name, int(opts.frames)
        file_ds = "CASIA_B" if ds == "CASIA_B_match" else ds
        base = self._datasets_dir() / ds / str(f)
        if opts.view is not None:
            base = base / f"view_{int(opts.view)}"
        view = CASIA_VIEWS[int(opts.view)] if opts.view is not None else ""

        def split(session: str, folder: Path, prefix: str, tag: str, view: str = "", condition: str = "") -> _Split:
            x, y, z = (folder / f"{prefix}source_{c}_{tag}_{f}.npy" for c in COORDINATES)
            return _Split(session, folder, (x, y, z), folder / f"frame_id_{tag}_{f}.npy", view, condition)

        train_dir = base / f"{file_ds}_train_npy_data"
        test_dir = base / f"{file_ds}_test_npy_data"
        splits = [split("train", train_dir, "", file_ds)]
        if ds == "IAS":
            splits += [split(name, test_dir, "t_", f"IAS-{name}") for name in IAS_TEST_SPLITS]
        elif ds == "CASIA_B_match":
            splits += [split(c, test_dir / c, "t_", file_ds, condition=c) for c in CME_CONDITIONS]
        else:
            splits.append(split("test", test_dir, "t_", file_ds, view=view))
        return splits

    def _present_splits(self) -> list[_Split]:
        """The splits with any file present; a split with some of its files missing is an error."""
        present = []
        for sp in self._splits():
            files = (*sp.coordinate_files, sp.label_file)
            found = [p.is_file() for p in files]
            if any(found) and not all(found):
                missing = files[found.index(False)]
                raise DataFormatError(missing, f"missing: split {sp.session!r} has other files in {sp.folder}")
            if all(found):
                present.append(sp)
        return present

    def source_files(self) -> list[Path]:
        return sorted(p for sp in self._present_splits() for p in (*sp.coordinate_files, sp.label_file))

    def read(self) -> list[SkeletonSequence]:
        opts = self._check_options()
        splits = self._present_splits()
        if not any(sp.session == "train" for sp in splits):
            train = self._splits()[0]
            raise DataFormatError(train.label_file, "the training split is missing")
        layout = DATASET_LAYOUTS[opts.dataset_name]
        records: list[SkeletonSequence] = []
        for sp in splits:
            windows, persons = self._read_split(sp, int(opts.frames), layout.num_joints)
            for k in range(len(persons)):
                records.append(
                    SkeletonSequence(
                        frames=windows[k],
                        layout=layout.name,
                        person=int(persons[k]),
                        sequence=f"{opts.dataset_name}-{sp.session}-{k:06d}",
                        view=sp.view,
                        condition=sp.condition,
                        session=sp.session,
                        source=str(sp.coordinate_files[0]),
                    )
                )
        return records

    @staticmethod
    def _read_split(sp: _Split, frames: int, joints: int) -> tuple[np.ndarray, np.ndarray]:
        """Windows [N, f, J, 3] and persons [N] of one split, checked against each other."""
        persons = load_numeric_npy(sp.label_file)
        if persons.ndim != 1:
            raise DataFormatError(sp.label_file, f"frame_id must be one person per window [N], got shape {persons.shape}")
        if len(persons) == 0:
            raise DataFormatError(sp.label_file, "no windows (empty frame_id)")
        if persons.dtype.kind == "f":
            if not np.isfinite(persons).all() or not np.array_equal(persons, np.round(persons)):
                bad = int(np.flatnonzero(~np.isfinite(persons) | (persons != np.round(persons)))[0])
                raise DataFormatError(sp.label_file, f"person label {persons[bad].item()!r} at window {bad} is not an integer")
        persons = persons.astype(np.int64)
        coords = []
        for path in sp.coordinate_files:
            array = load_numeric_npy(path)
            if array.ndim == 3 and array.shape[1:] == (frames, joints):
                array = array.reshape(-1, joints)
            if array.ndim != 2 or array.shape[1] != joints:
                raise DataFormatError(path, f"array of shape {array.shape}, expected [N*{frames}, {joints}] skeleton rows")
            if array.shape[0] % frames:
                raise DataFormatError(
                    path, f"{array.shape[0]} skeleton rows is not a whole number of {frames}-frame windows (truncated?)"
                )
            if array.shape[0] // frames != len(persons):
                raise DataFormatError(
                    path, f"{array.shape[0] // frames} windows but {sp.label_file.name} labels {len(persons)}"
                )
            bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
            if len(bad):
                row = int(bad[0])
                raise DataFormatError(path, f"NaN or infinite coordinate in row {row} (window {row // frames})")
            coords.append(array.astype(np.float32))
        windows = np.stack(coords, axis=-1).reshape(len(persons), frames, joints, 3)
        return windows, persons
