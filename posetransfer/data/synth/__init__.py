"""Procedural synthetic people written in the PATN on-disk layout (Market-1501 or DeepFashion style).

Why: the real benchmarks cannot be downloaded at run time, yet training, testing, evaluation and the
applications all need a dataset with *exact* keypoints, one person per identity in many poses and
identity-disjoint splits. This package draws such people fast enough to make thousands in seconds.

How a picture is made (every random number of an image comes from a generator seeded with
``(seed, identity, pose)``, so the result does not depend on the order or on the number of workers):

* An :class:`Identity` fixes what stays the same across poses: skin, hair colour and style (short,
  fringe, long, bun, bald), body proportions, the top (t-shirt, long sleeves, shirt, jacket over a shirt,
  tank top) with its colours and a structured pattern (solid, stripes, checks, dots, colour block), a front
  logo and/or a back print, the bottom (trousers, shorts, skirt, dress), belt, shoes and a backpack.
* A :class:`PoseParams` comes from a small kinematic model with joint limits: view (front, back, side,
  three-quarter yaw), a pose family (standing, walking, running, arms raised, waving, hands on hips, arms
  crossed, hands behind the back, reaching, phoning) with random joint angles, torso lean/twist, head turn,
  framing jitter and lighting (light direction, ambient level, gain, colour tint).
* The 3-D skeleton is rotated by the yaw, projected orthographically and fitted into the frame like a
  detector crop (full body, head near the top, feet near the bottom).
* Parts are drawn far-to-near (painter's algorithm on each part's depth) as anti-aliased tapered capsules,
  rounded trapezoids and an ellipsoidal head, Lambert-shaded with the cylinder/sphere normals. Clothing
  patterns live on the body surface (height along the body, angle around it), so a stripe or a logo moves
  with the body and a back view shows the back of the shirt and of the head.
* Keypoints are the projected joints (COCO-18, (y, x)), i.e. exactly where the limbs are drawn. A joint is
  -1 when it is outside the image, when a face point turns away from the camera (eyes and nose in back
  views, the far ear/eye in side views) or when another part is drawn over it (a hand behind the back, the
  far knee behind the near leg). Neck, shoulders and hips lie on the torso outline and are kept whenever
  they are inside the image, so side views keep both shoulders and hips and pass PATN's pair rule.

:func:`generate_dataset` renders ``identities × poses`` images into a temporary folder next to the output
and renames it into place at the end, so an interrupted run never leaves a half dataset that looks complete.
Speed comes from drawing each part only inside its bounding box, from rasterising all capsule parts of a
person in one flat pass (numpy's per-call overhead, not arithmetic, is the cost on boxes of a few hundred
pixels), from colour planes (3, H, W) so that loops run over pixels, kinematics in plain Python floats and
one batch of random numbers per image; the JPEG files are written by a background thread, so creating them
overlaps the next render. Measured speeds: README (Datasets) and benchmarks/results/synth_cpu.json.

The modules, bottom layer first (each imports only those above it in this list):

* :mod:`.kinds`: the kind (market | fashion, :mod:`posetransfer.kinds`) of a kind name or a free size.
* :mod:`.sampling`: seeds, the independent random streams, pre-drawn scalars, random colours.
* :mod:`.appearance`: :class:`Identity` and :class:`Garment`, sampled once per person.
* :mod:`.vecmath`: 3-vectors and rotations in plain floats.
* :mod:`.rig`: :class:`PoseParams`, pose families within joint limits, the skeleton and its projection.
* :mod:`.raster`: the canvas (capsules, trapezoids, blending, which part covers a pixel), colour planes.
* :mod:`.scene`: backgrounds, the contact shadow, the shirt texture.
* :mod:`.person`: the parts of a person in depth order, the visible keypoints, :func:`render_person`.
* :mod:`.writer`: names, images and files of a dataset, the worker pool, :func:`generate_dataset`.
"""
from __future__ import annotations

from .appearance import Garment, Identity, sample_identity
from .kinds import KINDS
from .person import render_person, render_rig
from .rig import FAMILIES, VIEWS, PoseParams, sample_pose
from .sampling import Draws
from .scene import Scene, render_background, sample_scene
from .writer import (FORMAT_VERSION, GENERATOR_TAG, JPEG_QUALITY, MAX_IDENTITIES, encode_jpeg,
                     generate_dataset, is_synth_dataset, make_identity, make_scene, plan_identity,
                     render_dataset_image, render_identity, write_identity)

__all__ = [
    "FAMILIES", "FORMAT_VERSION", "GENERATOR_TAG", "JPEG_QUALITY", "KINDS", "MAX_IDENTITIES",
    "VIEWS", "Draws", "Garment", "Identity", "PoseParams", "Scene", "encode_jpeg", "generate_dataset",
    "is_synth_dataset", "make_identity", "make_scene", "plan_identity", "render_background",
    "render_dataset_image", "render_identity", "render_person", "render_rig", "sample_identity", "sample_pose",
    "sample_scene", "write_identity",
]
