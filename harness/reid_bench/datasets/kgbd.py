"""KGBD, the Kinect Gait Biometry Dataset (Andersson & Araujo): 164 people walking past a Kinect v1.

Release layout: ``kinect gait raw dataset/PersonNNN/<k>.txt``, one file per walk. A file is a
stream of rows ``JointName;x;y;z`` (metres), 20 rows per frame in the recorder's own joint
order (Head, Shoulder-Center, Shoulder-Right, ...), so joints are mapped by name onto
``kinect-v1-20``. People have different numbers of walks; that is the release, not an error.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from reid_bench.api import SkeletonSequence
from reid_bench.datasets import DataFormatError, FileDataset, data_files
from reid_bench.datasets.ias_lab import natural_key, numbered_lines, parse_number
from reid_bench.layouts import KINECT_V1_20

JOINTS_PER_FRAME = 20
#: The release's joint names (the recorder's spelling, e.g. 'Hip-centro') -> kinect-v1-20 joint.
KGBD_JOINT_NAMES: dict[str, str] = {
    "Head": "Head",
    "Shoulder-Center": "ShoulderCenter",
    "Shoulder-Right": "ShoulderRight",
    "Shoulder-Left": "ShoulderLeft",
    "Elbow-Right": "ElbowRight",
    "Elbow-Left": "ElbowLeft",
    "Wrist-Right": "WristRight",
    "Wrist-Left": "WristLeft",
    "Hand-Right": "HandRight",
    "Hand-Left": "HandLeft",
    "Spine": "Spine",
    "Hip-centro": "HipCenter",
    "Hip-Right": "HipRight",
    "Hip-Left": "HipLeft",
    "Knee-Right": "KneeRight",
    "Knee-Left": "KneeLeft",
    "Ankle-Right": "AnkleRight",
    "Ankle-Left": "AnkleLeft",
    "Foot-Right": "FootRight",
    "Foot-Left": "FootLeft",
}
# Names are matched case-insensitively: the index into kinect-v1-20 for each lower-cased name.
_JOINT_INDEX = {name.lower(): KINECT_V1_20.joint_index(target) for name, target in KGBD_JOINT_NAMES.items()}
# Where the person folders may sit below <data-root>/kgbd, as the archive unpacks.
RELEASE_SUBFOLDERS = (Path("."), Path("kinect gait raw dataset"), Path("Dataset A") / "kinect gait raw dataset")
_PERSON_DIR = re.compile(r"^Person(\d+)$")


@dataclass
class KGBDOptions:
    """``joint_order``: "sdk" maps each row by its joint name onto kinect-v1-20 (Kinect SDK order,
    HipCenter first); "file" keeps each frame's rows in the file's own order (Head first), as the
    skeleton releases' preprocessing reads them (Kali-Hac/SimMC Preprocess.py lines 328-340, commit
    c325ad5: the name is split off and ignored), so that their kinect-v1-20 graphs, part lists and
    centring on joint 0 apply to the file's order, as there."""

    joint_order: Literal["sdk", "file"] = "sdk"


def read_kgbd_walk(path: Path, joint_order: str = "sdk") -> np.ndarray:
    """One walk: frames [T, 20, 3] in kinect-v1-20 order, or in the file's row order."""
    lines = numbered_lines(path)
    if not lines:
        raise DataFormatError(path, "empty sequence (no joint rows)")
    if len(lines) % JOINTS_PER_FRAME:
        raise DataFormatError(
            path, f"truncated: {len(lines)} joint rows is not a whole number of {JOINTS_PER_FRAME}-joint frames "
            f"(the last frame has {len(lines) % JOINTS_PER_FRAME})", line=lines[-1][0])
    frames = np.empty((len(lines) // JOINTS_PER_FRAME, JOINTS_PER_FRAME, 3), dtype=np.float64)
    seen = np.zeros(JOINTS_PER_FRAME, dtype=bool)
    for row, (number, line) in enumerate(lines):
        t, slot = divmod(row, JOINTS_PER_FRAME)
        if slot == 0:
            seen[:] = False
        fields = [f.strip() for f in line.split(";")]
        if len(fields) == 5 and fields[4] == "":  # a trailing separator
            fields = fields[:4]
        if len(fields) != 4:
            raise DataFormatError(path, f"expected 'JointName;x;y;z' (4 fields), found {len(fields)}", line=number)
        joint = _JOINT_INDEX.get(fields[0].lower())
        if joint is None:
            raise DataFormatError(
                path, f"unknown joint name {fields[0]!r}; KGBD names are {', '.join(KGBD_JOINT_NAMES)}", line=number)
        if seen[joint]:
            raise DataFormatError(path, f"joint {fields[0]!r} appears twice in frame {t + 1}", line=number)
        seen[joint] = True
        target = joint if joint_order == "sdk" else slot
        for k, axis in enumerate("xyz", start=1):
            value = parse_number(path, number, axis, fields[k])
            if not math.isfinite(value):
                raise DataFormatError(path, f"non-finite {axis} coordinate {fields[k]!r}", line=number)
            frames[t, target, k - 1] = value
    return frames.astype(np.float32)


class KGBD(FileDataset):
    modality = "skeleton"
    layout = "kinect-v1-20"
    folder = "kgbd"
    loader_version = "1"
    options_class = KGBDOptions
    description = (
        "Kinect Gait Biometry Dataset: 164 people, several walks each in front of a Kinect v1 (uneven "
        "counts per person). Joints are mapped by name from the recorder's order to Kinect SDK order."
    )
    data_format = (
        "<root>/PersonNNN/<k>.txt, or the archive's <root>/kinect gait raw dataset/PersonNNN/<k>.txt "
        "(also below 'Dataset A/'); rows "
        "'JointName;x;y;z' in metres, 20 rows per frame in the file's own joint order, names as released "
        "(Head, Shoulder-Center, ..., Hip-centro, ..., Foot-Left; case-insensitive) mapped to kinect-v1-20. "
        "Person id NNN; sequence id 'PersonNNN/<k>'. Files other than *.txt are not read."
    )
    license = "research use; see the dataset's ResearchGate/Mendeley page"
    citation = (
        "V. O. Andersson, R. M. Araujo. Person Identification Using Anthropometric and Gait Data from "
        "Kinect Sensor. AAAI 2015."
    )
    obtain = (
        "https://www.researchgate.net/publication/275023745_Kinect_Gait_Biometry_Dataset_-_data_from_164_"
        "individuals_walking_in_front_of_a_X-Box_360_Kinect_Sensor"
    )

    def persons_dir(self) -> Path:
        """The folder holding the PersonNNN folders (the archive's own sub-folder is optional)."""
        root = self.require_root()
        for sub in RELEASE_SUBFOLDERS:
            candidate = root / sub
            if candidate.is_dir() and any(_PERSON_DIR.match(p.name) and p.is_dir() for p in candidate.iterdir()):
                return candidate
        return root

    def _person_dirs(self) -> list[Path]:
        base = self.persons_dir()
        return sorted((p for p in base.iterdir() if p.is_dir() and _PERSON_DIR.match(p.name)),
                      key=lambda p: natural_key(p.name))

    @staticmethod
    def _walk_files(person_dir: Path) -> list[Path]:
        return sorted(data_files((f for f in person_dir.iterdir() if f.suffix.lower() == ".txt"),
                                 "a KGBD walk file (*.txt)"), key=lambda f: natural_key(f.name))

    def source_files(self) -> list[Path]:
        return sorted(f for p in self._person_dirs() for f in self._walk_files(p))

    def read(self) -> list[SkeletonSequence]:
        records: list[SkeletonSequence] = []
        for person_dir in self._person_dirs():
            person = int(_PERSON_DIR.match(person_dir.name).group(1))
            walks = self._walk_files(person_dir)
            if not walks:
                raise DataFormatError(person_dir, "person folder has no walk files (<k>.txt)")
            for path in walks:
                records.append(SkeletonSequence(
                    frames=read_kgbd_walk(path, self.options.joint_order), layout="kinect-v1-20", person=person,
                    sequence=f"{person_dir.name}/{path.stem}", source=str(path),
                ))
        return records

    def verify(self) -> list[str]:
        problems: list[str] = []
        base = self.persons_dir()
        persons = self._person_dirs()
        if not persons:
            problems.append(f"no PersonNNN folders under {base}")
        for person_dir in persons:
            others = sorted(f.name for f in person_dir.iterdir() if f.is_file() and f.suffix.lower() != ".txt")
            if others:
                problems.append(f"{person_dir}: files that are not walks (not read): {others}")
        return problems
