"""Skeleton graphs of ST-GCN and CTR-GCN, built from a harness layout's bones.

``[SG]`` is yysijie/st-gcn ``net/utils/graph.py`` and ``[CG]`` Uason-Chen/CTR-GCN
``graph/tools.py`` / ``graph/ntu_rgb_d.py`` (commits in the plugin README), read for facts and
re-expressed here. Both releases hard-code their graphs (NTU RGB+D's 25 joints, OpenPose's 18);
here a graph comes from any ``Layout``: its bones, and a centre joint chosen by ``centre_joint``.

Conventions, as in the releases: ``A[k, v, w]`` weighs the message from joint ``v`` to joint
``w`` in subset ``k`` (ST-GCN aggregates ``einsum('nkctv,kvw->nctw')``); CTR-GCN's matrices are
indexed ``[k, u, v]`` from ``v`` to ``u`` (``einsum('ncuv,nctv->nctu')``), which is why its
``edge_matrix`` writes a link (i, j) into row j, column i ([CG] tools.py 10-14).
"""

from __future__ import annotations

from collections import deque
from typing import Literal, Sequence

import numpy as np

from reid_bench.api import Layout

Partition = Literal["spatial", "spatial-geodesic", "distance", "uniform"]
Edges = Sequence[tuple[int, int]]


def centre_joint(layout: Layout) -> int:
    """The joint both releases centre their partition on: NTU's joint 21 (spine shoulder, [SG] 61)
    and OpenPose's neck ([SG] 50). Here the layout's ``neck`` role when it names one joint (Kinect
    v1 ShoulderCenter, Kinect v2 SpineShoulder, CASIA-14 Neck); otherwise the graph's centre: the
    joint with the smallest eccentricity, the lowest index on ties (COCO-17, which has no neck)."""
    group = dict(layout.roles).get("neck")
    if group is not None and len(group) == 1:
        return int(group[0])
    dist = geodesic_distances(layout.num_joints, layout.edges)
    return int(np.argmin(dist.max(axis=1)))


def geodesic_distances(num_joints: int, edges: Edges) -> np.ndarray:
    """[J, J] bone-hop distances by breadth-first search (inf between unconnected joints)."""
    neighbours: list[list[int]] = [[] for _ in range(num_joints)]
    for a, b in edges:
        neighbours[a].append(b)
        neighbours[b].append(a)
    dist = np.full((num_joints, num_joints), np.inf)
    for start in range(num_joints):
        dist[start, start] = 0
        queue = deque([start])
        while queue:
            node = queue.popleft()
            for nxt in neighbours[node]:
                if dist[start, nxt] == np.inf:
                    dist[start, nxt] = dist[start, node] + 1
                    queue.append(nxt)
    return dist


def limited_hops(num_joints: int, edges: Edges, max_hop: int) -> np.ndarray:
    """Hop distances up to ``max_hop`` and inf beyond, as [SG] 124-136 computes them."""
    dist = geodesic_distances(num_joints, edges)
    dist[dist > max_hop] = np.inf
    return dist


def column_normalise(adj: np.ndarray) -> np.ndarray:
    """``A @ diag(1 / column sums)``, empty columns left at zero ([SG] 139-147, [CG] tools.py 27-35)."""
    sums = adj.sum(axis=0)
    inv = np.zeros_like(sums)
    np.divide(1.0, sums, out=inv, where=sums > 0)
    return adj * inv[None, :]


def stgcn_adjacency(num_joints: int, edges: Edges, centre: int, partition: Partition = "spatial",
                    max_hop: int = 1) -> np.ndarray:
    """ST-GCN's stacked adjacency [K, J, J] ([SG] 78-121).

    The normalised adjacency covers hops 0..max_hop (self links included). ``uniform``: K = 1.
    ``distance``: one subset per hop. ``spatial``: per hop, the pair (v, w) goes to the root
    subset when both are equally far from the centre, else to "close" when v lies farther than w
    and to "further" when nearer; hop 0 keeps its root subset only and every other hop merges
    root and close, so K = 3 at max_hop 1 ([SG] 95-119). The release compares distances limited
    to max_hop ([SG] 34-35, 103-109): beyond one hop from the centre every joint is "inf" away,
    so those bones all fall into the root subset; ``spatial`` keeps that, ``spatial-geodesic``
    uses the true distances to the centre as the paper describes the partition.
    """
    hops = limited_hops(num_joints, edges, max_hop)
    adjacency = np.zeros((num_joints, num_joints))
    for hop in range(0, max_hop + 1):
        adjacency[hops == hop] = 1
    norm = column_normalise(adjacency)
    if partition == "uniform":
        return norm[None]
    if partition == "distance":
        return np.stack([np.where(hops == hop, norm, 0.0) for hop in range(0, max_hop + 1)])
    if partition not in ("spatial", "spatial-geodesic"):
        raise ValueError(f"unknown ST-GCN partition {partition!r}; expected spatial, spatial-geodesic, distance, uniform")
    to_centre = (hops if partition == "spatial" else geodesic_distances(num_joints, edges))[:, centre]
    subsets = []
    for hop in range(0, max_hop + 1):
        pair = hops == hop
        v_far, w_far = to_centre[:, None], to_centre[None, :]
        # inf == inf counts as equal, as numpy compares in the release
        root = np.where(pair & (v_far == w_far), norm, 0.0)
        close = np.where(pair & (v_far > w_far), norm, 0.0)
        further = np.where(pair & (v_far < w_far), norm, 0.0)
        if hop == 0:
            subsets.append(root)
        else:
            subsets += [root + close, further]
    return np.stack(subsets)


def edge_matrix(links: Edges, num_joints: int) -> np.ndarray:
    """[J, J] with a 1 in row j, column i for each link (i, j) ([CG] tools.py 10-14)."""
    mat = np.zeros((num_joints, num_joints))
    for i, j in links:
        mat[j, i] = 1
    return mat


def inward_links(num_joints: int, edges: Edges, centre: int) -> list[tuple[int, int]]:
    """Each bone as (farther, nearer) joint with respect to the centre: NTU's hand-written
    ``inward`` list points every bone towards joint 21 ([CG] ntu_rgb_d.py 9-13). A bone whose
    ends lie equally far from the centre (a cycle, as COCO-17's shoulders) is kept both ways."""
    to_centre = geodesic_distances(num_joints, edges)[:, centre]
    links = []
    for a, b in edges:
        if to_centre[a] > to_centre[b]:
            links.append((a, b))
        elif to_centre[b] > to_centre[a]:
            links.append((b, a))
        else:
            links += [(a, b), (b, a)]
    return links


def ctrgcn_adjacency(num_joints: int, inward: Edges) -> np.ndarray:
    """CTR-GCN's 'spatial' graph [3, J, J]: identity, normalised inward and normalised outward
    links ([CG] tools.py 38-43, ntu_rgb_d.py 14-30)."""
    outward = [(j, i) for i, j in inward]
    identity = edge_matrix([(i, i) for i in range(num_joints)], num_joints)
    return np.stack([identity, column_normalise(edge_matrix(inward, num_joints)),
                     column_normalise(edge_matrix(outward, num_joints))])


def layout_stgcn_adjacency(layout: Layout, partition: Partition = "spatial") -> np.ndarray:
    return stgcn_adjacency(layout.num_joints, layout.edges, centre_joint(layout), partition).astype(np.float32)


def layout_ctrgcn_adjacency(layout: Layout) -> np.ndarray:
    links = inward_links(layout.num_joints, layout.edges, centre_joint(layout))
    return ctrgcn_adjacency(layout.num_joints, links).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# GaitTR and GPGait (BNU-IVC/FastPoseGait, commit 94da9c8; ``[FG]`` is
# ``fastposegait/modeling/graph/graph.py``, ``[FD]`` ``fastposegait/data/transform.py``).
# Their graph, ``Graph(joint_format, max_hop)`` ([FG] 7-112), is ST-GCN's "distance" partition:
# one column-normalised subset per hop 0..max_hop, i.e. ``stgcn_adjacency(..., "distance", max_hop)``.


def layout_hop_adjacency(layout: Layout, max_hop: int) -> np.ndarray:
    """[max_hop + 1, J, J]: FastPoseGait's ``Graph.A`` ([FG] 80-102) on the layout's bones."""
    return stgcn_adjacency(layout.num_joints, layout.edges, centre_joint(layout), "distance", max_hop).astype(np.float32)


def parent_joints(num_joints: int, edges: Edges, centre: int) -> np.ndarray:
    """Each joint's neighbour one hop nearer the centre (the lowest index on ties); the centre and
    joints not connected to it are their own parent. FastPoseGait hand-writes this table as
    ``connect_joint`` for its bone stream ([FD] 253-258, 276-278); COCO's nose (its centre) takes
    the left shoulder there, here the centre's bone is zero (as OpenPose's neck there, [FD] 257)."""
    dist = geodesic_distances(num_joints, edges)[:, centre]
    parent = np.arange(num_joints)
    neighbours: list[list[int]] = [[] for _ in range(num_joints)]
    for a, b in edges:
        neighbours[a].append(b)
        neighbours[b].append(a)
    for j in range(num_joints):
        nearer = sorted(n for n in neighbours[j] if dist[n] < dist[j])
        if nearer:
            parent[j] = nearer[0]
    return parent


def mirror_joints(layout: Layout) -> np.ndarray:
    """The left-right swap of the joints, by name (Left/Right, left/right): FastPoseGait's
    ``invers_arr`` for COCO ([FD] 219-222), for any layout. Joints without a counterpart stay."""
    names = list(layout.joints)
    swap = {"Left": "Right", "Right": "Left", "left": "right", "right": "left", "LEFT": "RIGHT", "RIGHT": "LEFT"}
    out = np.arange(len(names))
    for i, name in enumerate(names):
        for a, b in swap.items():
            if a in name and name.replace(a, b) in names:
                out[i] = names.index(name.replace(a, b))
                break
    return out
