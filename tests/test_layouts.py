"""Built-in layouts and user layouts from TOML/JSON files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reid_bench.layouts import CASIA_14, COCO_17, KINECT_V1_20, KINECT_V2_25, load_layout_file
from reid_bench.registry import get_registry, reset_registry


@pytest.mark.parametrize("layout, nodes", [(KINECT_V1_20, (39, 20, 10, 5)), (KINECT_V2_25, (49, 25, 10, 5)),
                                           (CASIA_14, (27, 14, 10, 5)), (COCO_17, (36, 17, 10, 5))])
def test_builtin_layouts(layout, nodes):
    layout.validate()
    assert (layout.num_hyper_joints, layout.num_joints, len(layout.parts), len(layout.bodies)) == nodes
    adj = layout.adjacency()
    assert (adj == adj.T).all() and adj.sum() == 2 * len(layout.edges)


def test_kinect_v2_groups_follow_the_issue():
    assert KINECT_V2_25.parts[5] == (2, 3, 20) and KINECT_V2_25.parts[7] == (6, 7, 21, 22)
    assert KINECT_V2_25.bodies[2] == (0, 1, 2, 3, 20)
    assert KINECT_V2_25.joint_index("SpineShoulder") == 20


STICK = {"name": "stick-5", "joints": ["hip", "neck", "head", "lfoot", "rfoot"],
         "edges": [[0, 1], [1, 2], [0, 3], [0, 4]],
         "parts": [[0], [1], [2], [3], [4], [0, 1], [1, 2], [0, 3], [0, 4], [2]],
         "bodies": [[0, 1], [2], [3], [4], [1]]}


def test_user_layout_from_toml_and_json(tmp_path):
    j = tmp_path / "stick.json"
    j.write_text(json.dumps(STICK))
    layout = load_layout_file(j)
    assert layout.num_joints == 5 and layout.num_hyper_joints == 9
    t = tmp_path / "stick.toml"
    t.write_text('name = "stick-5"\njoints = ["hip", "neck", "head", "lfoot", "rfoot"]\n'
                 'edges = [[0, 1], [1, 2], [0, 3], [0, 4]]\n'
                 'parts = [[0], [1], [2], [3], [4], [0, 1], [1, 2], [0, 3], [0, 4], [2]]\n'
                 'bodies = [[0, 1], [2], [3], [4], [1]]\n')
    from_toml = load_layout_file(t)
    assert (from_toml.joints, from_toml.edges, from_toml.parts, from_toml.bodies) == (layout.joints, layout.edges, layout.parts, layout.bodies)
    reset_registry()
    reg = get_registry()
    reg.register_layout(layout)
    assert reg.layout("stick-5") is layout
    with pytest.raises(Exception, match="clashes"):
        reg.register_layout(load_layout_file(j).__class__(**{**layout.__dict__, "name": "kinect-v1-20"}))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"edges": [[0, 1], [1, 2], [0, 3], [0, 9]]}, "out of range"),
        ({"edges": [[0, 1], [1, 2], [0, 3]]}, "not connected"),
        ({"bodies": [[0, 1], [2], [3], [1]]}, "do not cover joints [4]"),
        ({"parts": [[0], [1], [2], [3], [4], [0, 7]]}, "out of range"),
        ({"joints": ["hip", "hip", "head", "lfoot", "rfoot"]}, "duplicate joint names"),
    ],
)
def test_user_layout_validation_names_the_file(tmp_path, change, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({**STICK, **change}))
    with pytest.raises(ValueError) as info:
        load_layout_file(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_missing_key_and_unreadable_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\njoints = ["a"]\n')
    with pytest.raises(ValueError, match="missing key 'edges'"):
        load_layout_file(path)
    path.write_text("this is = not [toml")
    with pytest.raises(ValueError, match="cannot read layout"):
        load_layout_file(path)


def test_bone_lengths():
    frames = np.zeros((2, 20, 3), np.float32)
    frames[:, 1, 1] = 0.5
    lengths = KINECT_V1_20.bone_lengths(frames)
    assert lengths.shape == (2, 19) and lengths[0, 0] == pytest.approx(0.5)
