"""Synthetic detection scenes made of the built-in shapes, in ScanNet's files.

A scene is a floor with the built-in primitive shapes standing on it and blobs
of clutter points. Its files are the real formats (see `scannet`): the raw
scan `<scene>/<scene>_vh_clean_2.ply` with colours, its `<scene>/<scene>.txt`
axis alignment (the scan is written in a turned, shifted "raw" frame, as
ScanNet's are), `<scene>_bbox.npy` ground truth in the aligned frame with
class-index labels (`label_format=index`, classes `primitives`), and
`<scene>_proposals.json` (or .npy): every ground-truth box jittered (IoU >=
0.55 with it), false positives on clutter (IoU <= 0.1 with every object)
and one box in empty air, which holds no points and is dropped when cropping.
"""

import json
import os
from typing import NamedTuple

import numpy as np

from clip2point_jax.core import parallel
from clip2point_jax.data import primitives
from clip2point_jax.detection import boxes as box_lib
from clip2point_jax.detection import scannet


class SyntheticScene(NamedTuple):
  name: str
  points: np.ndarray  # float32[P, 3], aligned frame
  colors: np.ndarray  # uint8[P, 3]
  gt_boxes: np.ndarray  # float64[G, 7]
  gt_labels: np.ndarray  # int64[G]
  proposals: np.ndarray  # float64[K, 7]
  objectness: np.ndarray  # float64[K]
  proposal_source: np.ndarray  # int64[K]: the ground-truth box it jitters, -1 for false positives
  alignment: np.ndarray  # float64[4, 4]: raw -> aligned


def _place_object(rng, name, num_points, oriented):
  """One shape scaled to 0.4-1.0 m, standing at the origin; -> (points, box)."""
  cloud = primitives.make_cloud(name, num_points, rng).astype(np.float64)
  cloud -= (cloud.min(0) + cloud.max(0)) / 2
  cloud *= rng.uniform(0.4, 1.0) / np.ptp(cloud, axis=0).max()
  cloud[:, 2] -= cloud[:, 2].min()
  lo, hi = cloud.min(0), cloud.max(0)
  box = np.concatenate([(lo + hi) / 2, hi - lo, [0.0]])
  if oriented:
    heading = rng.uniform(-np.pi, np.pi)
    c, s = np.cos(heading), np.sin(heading)
    turn = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    cloud = cloud @ turn.T
    box[:3] = turn @ box[:3]
    box[6] = heading
  return cloud, box


def make_scene(name: str, rng: np.random.Generator, *, num_objects: int = 4,
               points_per_object: int = 600, floor_points: int = 3000,
               clutter_blobs: int = 4, points_per_blob: int = 60,
               false_positives: int = 3, room=(5.0, 4.0), oriented: bool = False,
               class_names=primitives.CLASS_NAMES, labels=None) -> SyntheticScene:
  """One random scene; all sizes in metres, z up, floor at z = 0.

  `labels` (class indices, one per object) default to random classes.
  """
  width, depth = room
  positions, points, colors, gt_boxes, gt_labels = [], [], [], [], []
  if labels is None:
    labels = rng.choice(len(class_names), num_objects, replace=num_objects > len(class_names))
  for label in labels:
    cloud, box = _place_object(rng, class_names[label], points_per_object, oriented)
    reach = np.linalg.norm(box[3:5]) / 2
    for _ in range(200):
      xy = rng.uniform([reach + 0.2, reach + 0.2], [width - reach - 0.2, depth - reach - 0.2])
      if all(np.linalg.norm(xy - p) > reach + r + 0.2 for p, r in positions):
        break
    else:
      continue  # No room left for it.
    positions.append((xy, reach))
    shift = np.array([xy[0], xy[1], 0.0])
    points.append(cloud + shift)
    colors.append(np.tile(rng.integers(40, 255, 3), (len(cloud), 1)))
    gt_boxes.append(box + np.concatenate([shift, np.zeros(4)]))
    gt_labels.append(label)
  gt_boxes = np.asarray(gt_boxes).reshape(-1, 7)

  floor = np.column_stack([rng.uniform(0, width, floor_points), rng.uniform(0, depth, floor_points),
                           rng.normal(0, 0.005, floor_points)])
  points.append(floor)
  colors.append(np.full((floor_points, 3), 150) + rng.integers(-10, 10, (floor_points, 1)))
  blob_centres = []
  for _ in range(clutter_blobs):
    centre = np.array([rng.uniform(0.3, width - 0.3), rng.uniform(0.3, depth - 0.3), 0.0])
    blob = centre + np.abs(rng.normal(0, 0.08, (points_per_blob, 3))) * [1, 1, 2]
    blob[:, :2] -= 0.04
    blob_centres.append(centre)
    points.append(blob)
    colors.append(np.tile(rng.integers(0, 255, 3), (points_per_blob, 1)))

  proposals, objectness, source = [], [], []
  for g, box in enumerate(gt_boxes):
    for _ in range(50):
      jittered = box.copy()
      jittered[:3] += rng.normal(0, 0.04, 3) * box[3:6]
      jittered[3:6] *= np.exp(rng.normal(0, 0.06, 3))
      if box_lib.iou_3d(jittered[None], box[None])[0, 0] >= 0.55:
        break
    else:
      jittered = box.copy()
    proposals.append(jittered)
    objectness.append(rng.uniform(0.6, 1.0))
    source.append(g)
  candidates = [c for c in blob_centres]
  for _ in range(false_positives):
    for _ in range(100):
      centre = candidates.pop() if candidates else np.array(
          [rng.uniform(0.3, width - 0.3), rng.uniform(0.3, depth - 0.3), 0.0])
      size = rng.uniform(0.3, 0.7, 3)
      box = np.array([centre[0], centre[1], size[2] / 2, *size, 0.0])
      if not len(gt_boxes) or box_lib.iou_3d(box[None], gt_boxes).max() <= 0.1:
        break
    else:
      continue
    proposals.append(box)
    objectness.append(rng.uniform(0.05, 0.6))
    source.append(-1)
  # In the air above the room: no points inside.
  proposals.append(np.array([width / 2, depth / 2, 5.0, 0.5, 0.5, 0.5, 0.0]))
  objectness.append(0.5)
  source.append(-1)
  order = rng.permutation(len(proposals))

  angle = rng.uniform(-np.pi, np.pi)
  c, s = np.cos(angle), np.sin(angle)
  alignment = np.array([[c, -s, 0, rng.uniform(-3, 3)], [s, c, 0, rng.uniform(-3, 3)],
                        [0, 0, 1, 0], [0, 0, 0, 1]])
  return SyntheticScene(
      name, np.concatenate(points).astype(np.float32), np.concatenate(colors).clip(0, 255).astype(np.uint8),
      gt_boxes, np.asarray(gt_labels, np.int64), np.asarray(proposals)[order],
      np.asarray(objectness)[order], np.asarray(source, np.int64)[order], alignment)


def write_scene(folder: str, scene: SyntheticScene, proposals_format: str = "json") -> None:
  """Writes one scene's files into `folder` (layout in the module doc)."""
  scan_dir = os.path.join(folder, scene.name)
  os.makedirs(scan_dir, exist_ok=True)
  raw = scannet.apply_alignment(scene.points, np.linalg.inv(scene.alignment))
  scannet.write_ply(os.path.join(scan_dir, scene.name + scannet.SCAN_SUFFIX), raw, scene.colors)
  scannet.write_axis_alignment(os.path.join(scan_dir, scene.name + ".txt"), scene.alignment)
  oriented = bool(np.any(scene.gt_boxes[:, 6] != 0))
  columns = scene.gt_boxes if oriented else scene.gt_boxes[:, :6]
  np.save(os.path.join(folder, scene.name + scannet.BOXES_SUFFIX),
          np.concatenate([columns, scene.gt_labels[:, None].astype(np.float64)], 1))
  scannet.write_proposals(os.path.join(folder, f"{scene.name}_proposals.{proposals_format}"),
                          scene.proposals, scene.objectness)


def write_scene_folder(folder: str, num_scenes: int, seed: int = 0, proposals_format: str = "json",
                       **scene_options) -> list[SyntheticScene]:
  """`num_scenes` scenes `scene0000_00`, ... written into `folder`; returns them.

  `scene_options` go to `make_scene`. Classes are dealt out in turns of a
  random order, so every class appears once there are as many objects as
  classes (a class without ground truth would score AP 0 for any detection
  of it). The same seed gives the same scenes.
  """
  os.makedirs(folder, exist_ok=True)
  num_objects = scene_options.pop("num_objects", 4)
  num_classes = len(scene_options.get("class_names", primitives.CLASS_NAMES))
  deck = np.concatenate([np.random.default_rng([seed, 10**6, turn]).permutation(num_classes)
                         for turn in range(-(-num_scenes * num_objects // num_classes))])
  scenes = []
  for i in range(num_scenes):
    scene = make_scene(f"scene{i:04d}_00", np.random.default_rng([seed, i]), num_objects=num_objects,
                       labels=deck[i * num_objects:(i + 1) * num_objects], **scene_options)
    write_scene(folder, scene, proposals_format)
    scenes.append(scene)
  return scenes


OPTIONS_FILE = "options.json"


def ensure_scene_folder(folder: str, seed: int, options: dict) -> str:
  """`write_scene_folder(folder, seed=seed, **options)` unless `folder` already holds exactly those scenes.

  A stamp of the seed and options marks a finished folder; host 0 writes
  first (`parallel.host0_first`). `options` holds `num_scenes` and
  `make_scene`'s options. Returns `folder`.
  """
  stamp = os.path.join(folder, OPTIONS_FILE)
  wanted = json.dumps({"seed": seed, **options}, sort_keys=True)

  def write_once():
    if os.path.exists(stamp):
      with open(stamp) as f:
        if f.read() == wanted:
          return
    scene_options = dict(options)
    write_scene_folder(folder, scene_options.pop("num_scenes"), seed=seed, **scene_options)
    with open(stamp, "w") as f:
      f.write(wanted)

  parallel.host0_first(write_once, "synthetic scenes written")
  return folder
