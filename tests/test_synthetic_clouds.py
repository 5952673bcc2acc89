"""The synthetic coloured point clouds: determinism, Market-1501-style subsets, domains."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest

from reid_bench.api import PointCloud
from reid_bench.synthetic.clouds import CloudOptions, SyntheticClouds, generate_clouds

SMALL = CloudOptions(train_identities=6, test_identities=6, images_per_identity=5, distractors=3, junk=2, num_points=256)


@pytest.fixture(scope="module")
def market() -> list[PointCloud]:
    return generate_clouds(SMALL)


@pytest.fixture(scope="module")
def duke() -> list[PointCloud]:
    return generate_clouds(dataclasses.replace(SMALL, domain="duke"))


def test_deterministic_for_the_same_options(market):
    again = generate_clouds(SMALL)
    assert len(again) == len(market)
    for a, b in zip(market, again):
        assert (a.person, a.camera, a.subset, a.source) == (b.person, b.camera, b.subset, b.source)
        assert a.points.tobytes() == b.points.tobytes()


def test_another_seed_gives_other_clouds(market):
    other = generate_clouds(dataclasses.replace(SMALL, seed=1))
    assert not all(np.array_equal(a.points, b.points) for a, b in zip(market, other))


def test_counts_per_subset(market):
    counts = Counter(r.subset for r in market)
    assert counts["train"] == SMALL.train_identities * SMALL.images_per_identity
    assert counts["query"] + counts["gallery"] == (
        SMALL.test_identities * SMALL.images_per_identity + SMALL.distractors + SMALL.junk
    )
    assert set(counts) == {"train", "query", "gallery"}
    train_ids = {r.person for r in market if r.subset == "train"}
    query_ids = {r.person for r in market if r.subset == "query"}
    assert len(train_ids) == SMALL.train_identities
    assert len(query_ids) == SMALL.test_identities
    # one query per camera an identity appears in
    for pid in query_ids:
        q = [r.camera for r in market if r.subset == "query" and r.person == pid]
        seen = {r.camera for r in market if r.person == pid}
        assert sorted(q) == sorted(seen)


def test_train_and_test_identities_are_disjoint(market):
    train_ids = {r.person for r in market if r.subset == "train"}
    test_ids = {r.person for r in market if r.subset in ("query", "gallery")} - {0, -1}
    assert train_ids and test_ids
    assert not train_ids & test_ids
    assert min(train_ids | test_ids) >= 1


def test_shapes_dtypes_and_ranges(market, duke):
    for r in market + duke:
        assert r.points.shape == (SMALL.num_points, 6)
        assert r.points.dtype == np.float32
        assert np.isfinite(r.points).all()
        rgb = r.points[:, 3:]
        assert rgb.min() >= 0.0 and rgb.max() <= 1.0
        assert r.source.startswith("synthetic:")
        assert r.domain in ("market", "duke")
    tall = [np.ptp(r.points[:, 1]) for r in market if r.subset == "train"]
    assert 1.2 < np.median(tall) < 2.3  # metres: people, not unit boxes


def test_each_query_has_a_cross_camera_match(market):
    gallery = [(r.person, r.camera) for r in market if r.subset == "gallery"]
    for q in (r for r in market if r.subset == "query"):
        assert any(p == q.person and c != q.camera for p, c in gallery), q.source


def test_distractors_and_junk_only_in_gallery(market):
    for label, count in ((0, SMALL.distractors), (-1, SMALL.junk)):
        recs = [r for r in market if r.person == label]
        assert len(recs) == count
        assert {r.subset for r in recs} == {"gallery"}


def test_cameras_per_domain(market, duke):
    assert {r.camera for r in market} <= set(range(1, 7))
    assert {r.camera for r in duke} <= set(range(1, 9))
    assert max(r.camera for r in duke) > 6  # duke's own cameras are used
    assert {r.domain for r in duke} == {"duke"}
    # identities of the two domains never collide
    assert not {r.person for r in market if r.person > 0} & {r.person for r in duke if r.person > 0}
    few = generate_clouds(dataclasses.replace(SMALL, cameras=3))
    assert {r.camera for r in few} <= {1, 2, 3}


def test_domains_differ_in_statistics():
    opts = CloudOptions(train_identities=30, test_identities=0, images_per_identity=4, distractors=0, junk=0, num_points=96)
    stats = {}
    for domain in ("market", "duke"):
        clouds = np.stack([r.points for r in generate_clouds(dataclasses.replace(opts, domain=domain))])
        rgb = clouds[..., 3:]
        stats[domain] = {
            "brightness": float(rgb.mean()),
            "blue_share": float((rgb[..., 2] / (rgb.sum(-1) + 1e-6)).mean()),
        }
    m, d = stats["market"], stats["duke"]
    assert d["brightness"] < m["brightness"] - 0.02  # darker winter palette and lighting
    assert d["blue_share"] > m["blue_share"] + 0.02  # bluish cast


def test_dataset_plugin():
    ds = SyntheticClouds(options=SMALL)
    assert ds.modality == "pointcloud"
    assert ds.options_class is CloudOptions
    assert "CC0" in ds.license and ds.citation and ds.obtain and ds.description and ds.data_format
    assert ds.verify() == []
    recs = ds.load()
    assert len(recs) == len(generate_clouds(SMALL))
    assert isinstance(SyntheticClouds().options, CloudOptions)
    assert SyntheticClouds(options=SMALL).checksum() != SyntheticClouds(options=dataclasses.replace(SMALL, seed=3)).checksum()


@pytest.mark.parametrize(
    "change",
    [{"domain": "mars"}, {"images_per_identity": 3}, {"cameras": 1}, {"num_points": 4}, {"occlusion": 2.0}],
)
def test_bad_options_are_refused(change):
    with pytest.raises(ValueError):  # refused when the options are made, before any generation
        dataclasses.replace(SMALL, **change)
