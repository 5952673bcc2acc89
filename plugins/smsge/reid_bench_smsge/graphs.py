"""SM-SGE's multi-scale skeleton graphs, built from a :class:`reid_bench.api.Layout`.

Four scales, finest first: hyper-joint (the joints plus one node at the midpoint of every
bone), joint, part (the layout's 10 groups) and body (its 5 groups). Every node's position is
the mean of the joints it covers, so each scale is a fixed linear map of the joint coordinates
(``pool`` [n_s, J]). Adjacency follows the bones: a bone's midpoint links its two end joints
(joints are no longer linked directly, as in the released ``generate_denser_adj``); two groups
are adjacent when a bone joins them or they share a joint. ``mask`` is the structural-relation
neighbourhood: nodes within ``nhood`` hops, self included (the released ``adj_to_bias``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reid_bench.api import Layout

SCALES: tuple[str, ...] = ("hyper", "joint", "part", "body")


@dataclass(frozen=True)
class ScaleGraph:
    name: str
    pool: np.ndarray  # float32 [n, J]: node position = pool @ joint positions
    adjacency: np.ndarray  # float32 [n, n], symmetric, no self loops
    mask: np.ndarray  # bool [n, n]: neighbours within nhood hops, self included

    @property
    def num_nodes(self) -> int:
        return int(self.pool.shape[0])


def _group_adjacency(groups: tuple[tuple[int, ...], ...], edges: tuple[tuple[int, int], ...]) -> np.ndarray:
    n = len(groups)
    adj = np.zeros((n, n), dtype=np.float32)
    sets = [set(g) for g in groups]
    for g in range(n):
        for h in range(g + 1, n):
            linked = bool(sets[g] & sets[h]) or any(
                (a in sets[g] and b in sets[h]) or (b in sets[g] and a in sets[h]) for a, b in edges
            )
            if linked:
                adj[g, h] = adj[h, g] = 1.0
    return adj


def _group_pool(groups: tuple[tuple[int, ...], ...], num_joints: int) -> np.ndarray:
    pool = np.zeros((len(groups), num_joints), dtype=np.float32)
    for g, joints in enumerate(groups):
        pool[g, list(joints)] = 1.0 / len(joints)
    return pool


def neighbourhood_mask(adjacency: np.ndarray, nhood: int = 1) -> np.ndarray:
    """Nodes reachable within ``nhood`` hops, self included."""
    n = adjacency.shape[0]
    step = (adjacency > 0).astype(np.int64) + np.eye(n, dtype=np.int64)
    reach = np.eye(n, dtype=np.int64)
    for _ in range(max(1, nhood)):
        reach = np.minimum(reach @ step, 1)
    return reach > 0


#: The release's part adjacency, the same for every dataset (utils/process_i.py lines 183-186 of
#: Kali-Hac/SM-SGE), over its 10 parts in order: left thigh, left shank, right thigh, right
#: shank, lower torso, upper torso/head, left upper arm, left forearm, right upper arm, right
#: forearm. The upper-torso/head part holds the upper arms: on CASIA-B's 14 joints, where that
#: part is the head alone, the head (not the neck) links to the arms.
RELEASED_PART_EDGES = ((5, 6), (5, 8), (6, 7), (8, 9), (5, 4), (4, 2), (4, 0), (2, 3), (1, 0))


def _edge_adjacency(n: int, edges: tuple[tuple[int, int], ...]) -> np.ndarray:
    adj = np.zeros((n, n), dtype=np.float32)
    for a, b in edges:
        adj[a, b] = adj[b, a] = 1.0
    return adj


def build_graphs(layout: Layout, nhood: int = 1, part_graph: str = "bones") -> dict[str, ScaleGraph]:
    """The four scale graphs of ``layout`` (node order: joints, then bone midpoints in edge order).

    ``part_graph``: "bones" links two parts that a bone joins or that share a joint; "released"
    uses the release's fixed part adjacency (``RELEASED_PART_EDGES``, 10 parts)."""
    if part_graph not in ("bones", "released"):
        raise ValueError(f"part_graph must be 'bones' or 'released', got {part_graph!r}")
    if part_graph == "released" and len(layout.parts) != 10:
        raise ValueError(f"layout {layout.name!r} has {len(layout.parts)} parts; the released part graph needs 10")
    j = layout.num_joints
    edges = tuple(layout.edges)
    # hyper-joint scale
    n_h = j + len(edges)
    pool_h = np.zeros((n_h, j), dtype=np.float32)
    pool_h[:j, :j] = np.eye(j, dtype=np.float32)
    adj_h = np.zeros((n_h, n_h), dtype=np.float32)
    for e, (a, b) in enumerate(edges):
        m = j + e
        pool_h[m, a] = pool_h[m, b] = 0.5
        adj_h[a, m] = adj_h[m, a] = adj_h[b, m] = adj_h[m, b] = 1.0
    pools = {
        "hyper": pool_h,
        "joint": np.eye(j, dtype=np.float32),
        "part": _group_pool(layout.parts, j),
        "body": _group_pool(layout.bodies, j),
    }
    adjs = {
        "hyper": adj_h,
        "joint": layout.adjacency(),
        "part": (_edge_adjacency(10, RELEASED_PART_EDGES) if part_graph == "released"
                 else _group_adjacency(layout.parts, edges)),
        "body": _group_adjacency(layout.bodies, edges),
    }
    # The released code uses nhood for the joint scale only and 1 hop elsewhere.
    return {
        s: ScaleGraph(s, pools[s], adjs[s], neighbourhood_mask(adjs[s], nhood if s == "joint" else 1))
        for s in SCALES
    }
