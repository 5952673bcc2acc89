"""Fixture writers for OG-Net's point-cloud releases, in exactly the released formats.

``write_market3d(tmp_path)`` writes ``<tmp_path>/market1501-3d/3DMarket+bg/{train,train_all,val,
query,gallery}/<pid>/<image>.jpg.obj`` the way layumi/hmr's ``generate_3DMarket_bg.py`` does
(``v x y z r g b`` with ``%f``, one ``f`` line) after layumi's prepare scripts split the images
(val = first image of each training identity, train = the rest, train_all = both; query = the
first image of each test identity per camera, gallery = the rest plus distractors and junk).
The returned :class:`Written` lists every cloud with the person / camera / subset the loader
must report and the points it must read back.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

FORMATS = ("obj", "ply", "ply-binary", "npy")


@dataclass(frozen=True)
class _Spec:
    release: str
    max_camera: int
    image: Callable[[int, int, int, int], str]  # (pid, cam, serial, k) -> image file name
    train_ids: Callable[[int], list[int]]
    test_ids: Callable[[int], list[int]]
    test_offset: int = 0
    junk: bool = False
    distractor_id: int | None = None


def _market_name(pid: int, cam: int, serial: int, k: int) -> str:
    return f"{pid:04d}_c{cam}s1_{serial * 25 + 1:06d}_{k + 1:02d}.jpg" if pid >= 0 else \
        f"-1_c{cam}s1_{serial * 25 + 1:06d}_{k + 1:02d}.jpg"


def _duke_name(pid: int, cam: int, serial: int, k: int) -> str:
    return f"{pid:04d}_c{cam}_f{serial * 97 + 46985:07d}.jpg"


def _msmt_name(pid: int, cam: int, serial: int, k: int) -> str:
    return f"{pid:04d}_{serial % 1000:03d}_{cam:02d}_0303morning_{serial * 7 % 10000:04d}_{k}.jpg"


def _cuhk_name(pid: int, cam: int, serial: int, k: int) -> str:
    return f"{pid:04d}_c{cam}_{serial}.png"


SPECS: dict[str, _Spec] = {
    "market1501-3d": _Spec("3DMarket+bg", 6, _market_name, lambda n: [2 * k + 2 for k in range(n)],
                           lambda n: [2 * k + 1 for k in range(n)], junk=True, distractor_id=0),
    "dukemtmc-3d": _Spec("3DDuke+bg", 8, _duke_name, lambda n: [2 * k + 2 for k in range(n)],
                         lambda n: [2 * k + 1 for k in range(n)], distractor_id=5001),
    # MSMT17 numbers train and test identities independently from 0000: they overlap on purpose.
    "msmt17-3d": _Spec("3DMSMT+bg", 15, _msmt_name, lambda n: list(range(n)), lambda n: list(range(n)),
                       test_offset=10000),
    "cuhk03np-3d": _Spec("3DCUHK+bg", 2, _cuhk_name, lambda n: [2 * k + 2 for k in range(n)],
                         lambda n: [2 * k + 1 for k in range(n)]),
}


@dataclass
class Written:
    root: Path
    """The dataset root handed to the loader (``<data-root>/<dataset name>``)."""
    release: Path
    clouds: list[dict] = field(default_factory=list)
    """One dict per file: subset, person, camera (as the loader reports them), file, points."""

    def subset(self, name: str) -> list[dict]:
        return [c for c in self.clouds if c["subset"] == name]


# -------------------------------------------------------------------------------- file writers


def write_obj(path: Path, points: np.ndarray, face: bool = True) -> None:
    """As layumi/hmr writes it: ``v x y z r g b`` with %f, then a single face line."""
    lines = ["v %f %f %f %f %f %f\n" % tuple(p) for p in np.asarray(points, dtype=np.float64)]
    if face:
        lines.append("f 1 2 3\n")
    path.write_text("".join(lines))


def _ply_header(fmt: str, n: int, float_colour: bool = False) -> bytes:
    ctype = "float" if float_colour else "uchar"
    return (
        f"ply\nformat {fmt} 1.0\ncomment written by reid-bench tests\nelement vertex {n}\n"
        f"property float x\nproperty float y\nproperty float z\nproperty {ctype} red\n"
        f"property {ctype} green\nproperty {ctype} blue\nelement face 1\n"
        f"property list uchar int vertex_indices\nend_header\n"
    ).encode()


def write_ply(path: Path, points: np.ndarray, binary: bool = False) -> None:
    """x y z as float, colours as uchar 0-255 (Open3D's layout), one face after the vertices."""
    points = np.asarray(points, dtype=np.float64)
    rgb = np.rint(points[:, 3:] * 255).astype(np.uint8)
    if binary:
        body = b"".join(struct.pack("<fffBBB", *p[:3], *c) for p, c in zip(points, rgb))
        body += struct.pack("<Biii", 3, 0, 1, 2)
        path.write_bytes(_ply_header("binary_little_endian", len(points)) + body)
    else:
        rows = "".join("%f %f %f %d %d %d\n" % (*p[:3], *c) for p, c in zip(points, rgb))
        path.write_bytes(_ply_header("ascii", len(points)) + rows.encode() + b"3 0 1 2\n")


def write_npy(path: Path, points: np.ndarray) -> None:
    np.save(path, np.asarray(points, dtype=np.float32), allow_pickle=False)


def write_cloud(path_without_ext: Path, points: np.ndarray, fmt: str = "obj") -> Path:
    """``<image name>.<ext>`` in the given format; returns the file written."""
    ext = {"obj": ".obj", "ply": ".ply", "ply-binary": ".ply", "npy": ".npy"}[fmt]
    path = path_without_ext.with_name(path_without_ext.name + ext)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "obj":
        write_obj(path, points)
    elif fmt == "npy":
        write_npy(path, points)
    else:
        write_ply(path, points, binary=fmt == "ply-binary")
    return path


def make_points(rng: np.random.Generator, pid: int, n: int) -> np.ndarray:
    """A person-shaped blob whose colours depend on the identity; rgb on the 1/255 grid so every
    format (uchar PLY included) stores it exactly."""
    tone = np.random.default_rng(abs(pid) + 17).random(3)
    xyz = rng.normal(size=(n, 3)) * [0.2, 0.5, 0.1] + [0.0, 0.9, 0.0]
    rgb = np.clip(tone + rng.normal(scale=0.08, size=(n, 3)), 0, 1)
    rgb = np.rint(rgb * 255) / 255
    return np.concatenate([xyz, rgb], axis=1)


# -------------------------------------------------------------------------------- releases


def write_release(root: Path, dataset: str, *, identities: int = 4, cameras: int | None = None, images: int = 2,
                  points: tuple[int, int] = (64, 128), fmt: str = "obj", junk: int | None = None,
                  distractors: int | None = None, release: str | None = None, seed: int = 0) -> Written:
    """A small OG-Net release of ``dataset`` under ``root/<dataset>``.

    ``identities`` training and as many test people, each seen by ``cameras`` cameras (default 3,
    or 2 for CUHK03-NP's camera pairs) with ``images`` images per camera. ``junk`` /
    ``distractors`` gallery images (person -1 / the dataset's distractor id) default to 1 where
    the real dataset has them. ``release=""`` writes the subset folders directly in the dataset
    root.
    """
    spec = SPECS[dataset]
    cameras = min(3, spec.max_camera) if cameras is None else cameras
    if cameras > spec.max_camera or images < 1 or identities < 1:
        raise ValueError(f"{dataset}: need 1 <= cameras <= {spec.max_camera}, images >= 1, identities >= 1")
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}")
    junk = (1 if spec.junk else 0) if junk is None else junk
    distractors = (1 if spec.distractor_id is not None else 0) if distractors is None else distractors
    rng = np.random.default_rng(seed)
    ds_root = Path(root) / dataset
    base = ds_root / (spec.release if release is None else release)
    out = Written(root=ds_root, release=base)
    serial = 0

    def emit(subsets: list[str], pid: int, cam: int, k: int, loader_person: int) -> None:
        nonlocal serial
        serial += 1
        name = spec.image(pid, cam, serial, k)
        pts = make_points(rng, pid, int(rng.integers(points[0], points[1] + 1)))
        for subset in subsets:
            folder = name.split("_")[0]
            path = write_cloud(base / subset / folder / name, pts, fmt)
            out.clouds.append({"subset": subset, "person": loader_person, "camera": cam, "file": path,
                               "points": pts.astype(np.float32)})

    for pid in spec.train_ids(identities):
        first = True
        for cam in range(1, cameras + 1):
            for k in range(images):
                emit(["train_all", "val" if first else "train"], pid, cam, k, pid)
                first = False
    for pid in spec.test_ids(identities):
        for cam in range(1, cameras + 1):
            for k in range(images):
                emit(["query" if k == 0 else "gallery"], pid, cam, k, pid + spec.test_offset)
    for j in range(distractors):
        did = spec.distractor_id
        emit(["gallery"], did, 1 + j % cameras, j, did + spec.test_offset if did else did)
    for j in range(junk):
        emit(["gallery"], -1, 1 + j % cameras, j, -1)
    return out


def write_market3d(root: Path, **kwargs) -> Written:
    return write_release(root, "market1501-3d", **kwargs)


def write_duke3d(root: Path, **kwargs) -> Written:
    return write_release(root, "dukemtmc-3d", **kwargs)


def write_msmt3d(root: Path, **kwargs) -> Written:
    return write_release(root, "msmt17-3d", **kwargs)


def write_cuhk03np3d(root: Path, **kwargs) -> Written:
    return write_release(root, "cuhk03np-3d", **kwargs)
