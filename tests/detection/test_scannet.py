"""ScanNet readers on fixture files in the exact formats, and their errors."""

import json
import math
import os
import struct

import numpy as np
import pytest
import trimesh

from clip2point_jax.detection import scannet
from clip2point_jax.errors import UserError

CLASSES = scannet.SCANNET18_CLASSES


def test_ply_written_like_scannet_reads_back_with_trimesh_and_ours(tmp_path):
  rng = np.random.default_rng(0)
  points = rng.normal(size=(50, 3)).astype(np.float32)
  colors = rng.integers(0, 256, (50, 3)).astype(np.uint8)
  faces = rng.integers(0, 50, (7, 3))
  path = str(tmp_path / "scene0000_00_vh_clean_2.ply")
  scannet.write_ply(path, points, colors, faces)
  with open(path, "rb") as f:
    head = f.read(400).split(b"end_header")[0].decode()
  assert "format binary_little_endian 1.0" in head and "property uchar alpha" in head
  assert "element face 7" in head and "property list uchar int vertex_indices" in head
  mesh = trimesh.load(path, process=False)  # an independent reader
  np.testing.assert_array_equal(np.asarray(mesh.vertices, np.float32), points)
  np.testing.assert_array_equal(np.asarray(mesh.visual.vertex_colors)[:, :3], colors)
  np.testing.assert_array_equal(mesh.faces, faces)
  scan = scannet.read_ply_vertices(path)
  np.testing.assert_array_equal(scan.points, points)
  np.testing.assert_array_equal(scan.colors, colors)


def test_ascii_and_big_endian_ply_by_hand(tmp_path):
  ascii_ply = tmp_path / "a.ply"
  ascii_ply.write_text("ply\nformat ascii 1.0\ncomment hand made\nelement vertex 2\n"
                       "property float x\nproperty float y\nproperty float z\nproperty float nx\n"
                       "element face 1\nproperty list uchar int vertex_indices\nend_header\n"
                       "1 2 3 0.5\n-4 5.5 6 0\n3 0 1 1\n")
  scan = scannet.read_ply_vertices(str(ascii_ply))
  np.testing.assert_array_equal(scan.points, [[1, 2, 3], [-4, 5.5, 6]])
  assert scan.colors is None
  big = tmp_path / "b.ply"
  header = (b"ply\nformat binary_big_endian 1.0\nelement vertex 2\nproperty double x\n"
            b"property double y\nproperty double z\nproperty uchar red\nproperty uchar green\n"
            b"property uchar blue\nend_header\n")
  body = struct.pack(">dddBBB", 1.5, -2.0, 0.25, 10, 20, 30) + struct.pack(">dddBBB", 0, 1, 2, 255, 0, 7)
  big.write_bytes(header + body)
  scan = scannet.read_ply_vertices(str(big))
  np.testing.assert_array_equal(scan.points, [[1.5, -2.0, 0.25], [0, 1, 2]])
  np.testing.assert_array_equal(scan.colors, [[10, 20, 30], [255, 0, 7]])


@pytest.mark.parametrize("content,message", [
    (b"solid cube\n", "not a PLY file"),
    (b"ply\nformat binary_little_endian 1.0\nelement vertex 10\nproperty float x\n", "no end_header"),
    (b"ply\nformat binary_little_endian 1.0\nelement vertex 10\nproperty float x\nproperty float y\n"
     b"property float z\nend_header\n" + b"\0" * 20, "truncated"),
    (b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float a\nend_header\n1\n", "no x, y, z"),
    (b"ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\n"
     b"end_header\n1 2 3\n1 nan 3\n", "NaN or inf"),
    (b"ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\n"
     b"end_header\n1 2 3\n", "truncated or corrupt"),
    (b"ply\nformat binary_middle_endian 1.0\nend_header\n", "unsupported PLY format"),
])
def test_bad_ply_files_are_named(tmp_path, content, message):
  path = tmp_path / "scene0001_00_vh_clean_2.ply"
  path.write_bytes(content)
  with pytest.raises(UserError, match=message) as error:
    scannet.read_ply_vertices(str(path))
  assert str(path) in str(error.value)


def test_axis_alignment_moves_the_scan(tmp_path):
  # A quarter turn about z, then a shift by (10, 0, 1): (1, 0, 0) -> (10, 1, 1).
  meta = tmp_path / "scene0000_00.txt"
  meta.write_text("colorHeight = 968\naxisAlignment = 0 -1 0 10 1 0 0 0 0 0 1 1 0 0 0 1\nnumDepthFrames = 5\n")
  ply = str(tmp_path / "scene0000_00_vh_clean_2.ply")
  scannet.write_ply(ply, np.array([[1, 0, 0], [0, 2, 3]], np.float32))
  scan = scannet.read_scan(ply, str(meta))
  np.testing.assert_allclose(scan.points, [[10, 1, 1], [8, 0, 4]], atol=1e-6)
  assert scan.colors.shape == (2, 3)
  no_alignment = tmp_path / "test_scan.txt"  # ScanNet's test scans have none
  no_alignment.write_text("colorHeight = 968\n")
  np.testing.assert_array_equal(scannet.read_axis_alignment(str(no_alignment)), np.eye(4))
  meta.write_text("axisAlignment = 1 0 0\n")
  with pytest.raises(UserError, match="16 numbers") as error:
    scannet.read_scan(ply, str(meta))
  assert str(meta) in str(error.value)


def test_votenet_vert_npy(tmp_path):
  vert = np.array([[1, 2, 3, 255, 128, 0], [4, 5, 6, 1, 2, 3]], np.float64)
  path = str(tmp_path / "scene0000_00_vert.npy")
  np.save(path, vert)
  scan = scannet.read_scan(path)
  np.testing.assert_array_equal(scan.points, vert[:, :3])
  np.testing.assert_array_equal(scan.colors, [[255, 128, 0], [1, 2, 3]])
  np.save(path, np.zeros((3, 2)))
  with pytest.raises(UserError, match="scene0000_00_vert.npy"):
    scannet.read_scan(path)


def test_votenet_bbox_npy_with_nyu40_ids(tmp_path):
  # As VoteNet's batch_load_scannet_data.py saves them: float64 [G, 7], NYU40 ids.
  rows = np.array([[1.0, 2.0, 0.5, 0.6, 0.7, 1.0, 3],    # cabinet -> 0
                   [0.0, 0.0, 0.4, 0.5, 0.5, 0.8, 5],    # chair -> 2
                   [3.0, 1.0, 0.3, 0.4, 0.4, 0.6, 39],   # garbagebin -> 17
                   [2.0, 2.0, 1.0, 1.0, 0.1, 2.0, 28]])  # shower curtain -> 13
  path = str(tmp_path / "scene0000_00_bbox.npy")
  np.save(path, rows)
  gt = scannet.read_gt_boxes(path, CLASSES, "nyu40")
  np.testing.assert_array_equal(gt.labels, [0, 2, 17, 13])
  assert [CLASSES[i] for i in gt.labels] == ["cabinet", "chair", "garbagebin", "showercurtrain"]
  np.testing.assert_array_equal(gt.boxes[:, :6], rows[:, :6])
  np.testing.assert_array_equal(gt.boxes[:, 6], 0)
  # The same boxes with class indices instead.
  np.save(path, np.concatenate([rows[:, :6], [[0], [2], [17], [13]]], 1))
  np.testing.assert_array_equal(scannet.read_gt_boxes(path, CLASSES, "index").labels, [0, 2, 17, 13])
  # Eight columns: a heading before the label.
  np.save(path, np.array([[0, 0, 0, 1, 2, 3, math.pi / 6, 4]]))
  gt = scannet.read_gt_boxes(path, CLASSES, "nyu40")
  assert gt.boxes[0, 6] == pytest.approx(math.pi / 6) and gt.labels.tolist() == [1]
  # A scene without objects: VoteNet saves shape (0, 7).
  np.save(path, np.zeros((0, 7)))
  gt = scannet.read_gt_boxes(path, CLASSES, "nyu40")
  assert gt.boxes.shape == (0, 7) and gt.labels.shape == (0,)


@pytest.mark.parametrize("array,label_format,message", [
    (np.array([[0, 0, 0, 1, 1, 1, 1]]), "nyu40", "label 1 is not the NYU40 id"),  # wall
    (np.array([[0, 0, 0, 1, 1, 1, 18]]), "index", "label 18 is not a class index 0..17"),
    (np.array([[0, 0, 0, 1, 1, 1, 3.5]]), "nyu40", "whole numbers"),
    (np.array([[0, 0, np.nan, 1, 1, 1, 3]]), "nyu40", "NaN or inf"),
    (np.array([[0, 0, 0, -1, 1, 1, 3]]), "nyu40", "negative size"),
    (np.zeros((2, 6)), "nyu40", r"shape \[G, 7\]"),
])
def test_bad_bbox_files_are_named(tmp_path, array, label_format, message):
  path = str(tmp_path / "scene0002_00_bbox.npy")
  np.save(path, array)
  with pytest.raises(UserError, match=message) as error:
    scannet.read_gt_boxes(path, CLASSES, label_format)
  assert path in str(error.value)
  with open(path, "wb") as f:
    f.write(b"\x93NUMPY garbage")
  with pytest.raises(UserError, match="scene0002_00_bbox.npy"):
    scannet.read_gt_boxes(path, CLASSES, label_format)


def test_nyu40_labels_need_the_scannet_classes(tmp_path):
  path = str(tmp_path / "s_bbox.npy")
  np.save(path, np.array([[0, 0, 0, 1, 1, 1, 3]]))
  with pytest.raises(UserError, match="label_format=index"):
    scannet.read_gt_boxes(path, ("a", "b"), "nyu40")


def test_proposals_npy_and_json(tmp_path):
  rows = np.array([[1, 2, 3, 0.5, 0.6, 0.7, 0.3, 0.9], [0, 0, 0, 1, 1, 1, 0, 0.1]])
  npy = str(tmp_path / "s_proposals.npy")
  np.save(npy, rows)
  got = scannet.read_proposals(npy)
  np.testing.assert_array_equal(got.boxes, rows[:, :7])
  np.testing.assert_array_equal(got.objectness, rows[:, 7])
  js = tmp_path / "s_proposals.json"
  js.write_text(json.dumps({"boxes": [[1, 2, 3, 0.5, 0.6, 0.7], [0, 0, 0, 1, 1, 1]], "objectness": [0.9, 0.1]}))
  got = scannet.read_proposals(str(js))
  np.testing.assert_array_equal(got.boxes[:, 6], 0)
  np.testing.assert_array_equal(got.objectness, [0.9, 0.1])
  js.write_text(json.dumps({"boxes": [[1, 2, 3, 0.5, 0.6, 0.7, 1.2]]}))  # headings, no objectness
  got = scannet.read_proposals(str(js))
  assert got.boxes[0, 6] == 1.2 and got.objectness.tolist() == [1.0]
  for path in (str(tmp_path / "w.npy"), str(tmp_path / "w.json")):
    scannet.write_proposals(path, rows[:, :7], rows[:, 7])
    np.testing.assert_allclose(scannet.read_proposals(path).boxes, rows[:, :7])


@pytest.mark.parametrize("name,content,message", [
    ("p_proposals.json", "{not json", "not valid JSON"),
    ("p_proposals.json", json.dumps([[1, 2, 3, 4, 5, 6]]), "expected a JSON object"),
    ("p_proposals.json", json.dumps({"boxes": [[1, 2, 3, 4, 5]]}), "6 \\(axis-aligned\\) or 7"),
    ("p_proposals.json", json.dumps({"boxes": [[0, 0, 0, 1, 1, 1]], "objectness": [0.5, 0.5]}),
     "1 boxes but objectness"),
    ("p_proposals.json", json.dumps({"boxes": [[0, 0, 0, 1, 1, 1]], "objectness": [1.5]}),
     "outside \\[0, 1\\]"),
    ("p_proposals.json", json.dumps({"boxes": [["a", 0, 0, 1, 1, 1]]}), "must be numbers"),
    ("p_proposals.npy", np.zeros((2, 7)), r"shape \[K, 8\]"),
])
def test_bad_proposal_files_are_named(tmp_path, name, content, message):
  path = tmp_path / name
  if isinstance(content, np.ndarray):
    np.save(path, content)
  else:
    path.write_text(content)
  with pytest.raises(UserError, match=message) as error:
    scannet.read_proposals(str(path))
  assert str(path) in str(error.value)


def _touch_scene(root, name, scan="ply", proposals="json", folder=True):
  scan_dir = root / name if folder else root
  scan_dir.mkdir(parents=True, exist_ok=True)
  if scan == "ply":
    scannet.write_ply(str(scan_dir / f"{name}_vh_clean_2.ply"), np.zeros((3, 3)))
    (scan_dir / f"{name}.txt").write_text("axisAlignment = 1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1\n")
  elif scan == "vert":
    np.save(root / f"{name}_vert.npy", np.zeros((3, 6)))
  np.save(root / f"{name}_bbox.npy", np.zeros((0, 7)))
  if proposals:
    scannet.write_proposals(str(root / f"{name}_proposals.{proposals}"), np.zeros((0, 7)), np.zeros(0))


def test_find_scenes_layouts_and_missing_files(tmp_path):
  _touch_scene(tmp_path, "scene0002_00")
  _touch_scene(tmp_path, "scene0001_00", scan="vert", proposals="npy")
  _touch_scene(tmp_path, "scene0003_00", folder=False)
  found = scannet.find_scenes(str(tmp_path))
  assert [s.name for s in found] == ["scene0001_00", "scene0002_00", "scene0003_00"]
  assert found[0].scan.endswith("scene0001_00_vert.npy") and found[0].meta is None
  assert found[0].proposals.endswith("_proposals.npy")
  assert found[1].scan.endswith(os.path.join("scene0002_00", "scene0002_00_vh_clean_2.ply"))
  assert found[1].meta.endswith("scene0002_00.txt")
  assert found[2].scan == str(tmp_path / "scene0003_00_vh_clean_2.ply")
  assert [s.name for s in scannet.find_scenes(str(tmp_path), scenes="scene0003_00,scene0001_00")] == [
      "scene0003_00", "scene0001_00"]
  with pytest.raises(UserError, match="'scene0009_00' has no scene0009_00_bbox.npy"):
    scannet.find_scenes(str(tmp_path), scenes="scene0009_00")
  _touch_scene(tmp_path, "scene0004_00", proposals=None)
  with pytest.raises(UserError, match="scene scene0004_00: no proposals"):
    scannet.find_scenes(str(tmp_path))
  _touch_scene(tmp_path, "scene0004_00", scan=None)
  (tmp_path / "scene0004_00" / "scene0004_00_vh_clean_2.ply").unlink()
  with pytest.raises(UserError, match="scene scene0004_00: no scan"):
    scannet.find_scenes(str(tmp_path))
  with pytest.raises(UserError, match="does not exist"):
    scannet.find_scenes(str(tmp_path / "nope"))
  with pytest.raises(UserError, match="no <scene>_bbox.npy"):
    scannet.find_scenes(str(tmp_path / "scene0002_00"))
