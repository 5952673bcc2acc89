"""BIWI RGBD-ID (Munaro, Fossati, Basso, Menegatti, Van Gool): Kinect v1 skeletons of 50 people.

Release layout (the dataset's README; the folder names as SimMC's ``Preprocess.py`` reads them,
lines 179-196 of Kali-Hac/SimMC at c325ad5)::

    Training/<person>/..._skel.txt          50 sequences, one per person
    Testing/Still/<person>/..._skel.txt     28 of them, another day and place: standing still
    Testing/Walking/<person>/..._skel.txt   the same 28 walking (two frontal, two diagonal walks)

One text file per frame (next to the frame's RGB, depth, user-map and ground-plane files, which
are not read), one row per joint in Kinect SDK order: ``id,x,y,z,x2D,y2D,trackingState,quality,
startJoint,endJoint,qx,qy,qz,qw`` (metres in the depth camera's frame; tracking state 0 = not
tracked, 1 = inferred, 2 = tracked): the IAS-Lab format, from the same group. <person> is the
integer identity. As the papers do (``Preprocess.py`` lines 215-234), a frame with an untracked
joint is dropped and counted, and of a file holding more than one skeleton the first 20 rows
are read (counted too).
"""

from __future__ import annotations

from reid_bench.datasets.ias_lab import IASLab


class BIWI(IASLab):
    folder = "biwi"
    loader_version = "1"
    session_folders = (("Training", "Training"), ("Still", "Testing/Still"), ("Walking", "Testing/Walking"))
    first_skeleton_only = True
    frame_file_kind = "a BIWI frame file (*skel.txt)"
    description = (
        "BIWI RGBD-ID: Kinect v1 skeletons of 50 people in a training sequence each; 28 of them seen again on "
        "another day and place, standing still (Still) and walking (Walking). Frames with an untracked joint "
        "are dropped and counted, as in the skeleton re-id papers."
    )
    data_format = (
        "<root>/{Training,Testing/Still,Testing/Walking}/<person>/**/*skel.txt; one file per frame (natural "
        "order of the file names), rows 'id,x,y,z,x2D,y2D,trackingState,quality,...' in Kinect v1 SDK joint "
        "order (the first 20 rows: the first skeleton), metres -> layout kinect-v1-20. <person> is the "
        "integer identity; sessions Training, Still, Walking; sequence id '<session>/<person>'."
    )
    license = "CC BY-NC-SA 3.0 (the dataset's README), distributed without warranty"
    citation = (
        "M. Munaro, A. Fossati, A. Basso, E. Menegatti, L. Van Gool. One-Shot Person Re-Identification with a "
        "Consumer Depth Camera. In: Person Re-Identification, Springer, 2014."
    )
    obtain = "http://robotics.dei.unipd.it/reid/index.php/downloads (BIWI RGBD-ID)"
