"""Readers for ScanNet scenes, their ground-truth boxes and box proposals.

Files of one scene `<scene>` (e.g. `scene0011_00`), each looked up as
`<dir>/<scene>/<name>` or `<dir>/<name>`:

* Scan: `<scene>_vh_clean_2.ply`, ScanNet's mesh (binary or ASCII PLY; its
  vertices, with colours when present, are the point cloud, as VoteNet uses
  them), moved into the axis-aligned frame by the `axisAlignment` matrix of
  `<scene>.txt` when that file has one (ScanNet's test scans have none). Or,
  without the ply, VoteNet/3DETR's `<scene>_vert.npy` (float[P, 6]: x y z r g b,
  already aligned).
* Ground truth: `<scene>_bbox.npy`, float[G, 7] rows
  [cx, cy, cz, dx, dy, dz, label] in the aligned frame, as VoteNet's
  `scannet/batch_load_scannet_data.py` writes them (and 3DETR reads them). The
  label there is the NYU40 id (3 cabinet, 4 bed, ..., 39 garbagebin), which
  `label_format="nyu40"` maps to the 18 benchmark classes; files holding class
  indices 0..C-1 instead take `label_format="index"`. Rows of 8 columns,
  [cx, cy, cz, dx, dy, dz, heading, label], are read as oriented boxes.
* Proposals: `<scene>_proposals.npy`, float[K, 8] rows
  [cx, cy, cz, dx, dy, dz, heading, objectness]; or `<scene>_proposals.json`,
  {"boxes": [[cx, cy, cz, dx, dy, dz] or [..., heading], ...],
  "objectness": [...] (optional, 1 when absent)}. Objectness lies in [0, 1].

Every problem with a file raises one `UserError` naming it.
"""

import json
import os
import re
from typing import NamedTuple

import numpy as np

from clip2point_jax.data import checks, point_files
from clip2point_jax.errors import UserError

# ScanNet's 18 detection classes in VoteNet's and 3DETR's order, their NYU40
# ids, and the words CLIP is prompted with.
SCANNET18_CLASSES = (
    "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf", "picture",
    "counter", "desk", "curtain", "refrigerator", "showercurtrain", "toilet", "sink",
    "bathtub", "garbagebin",
)
SCANNET18_NYU40_IDS = (3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)
SCANNET18_PROMPT_NAMES = (
    "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf", "picture",
    "counter", "desk", "curtain", "refrigerator", "shower curtain", "toilet", "sink",
    "bathtub", "garbage bin",
)
LABEL_FORMATS = ("nyu40", "index")

SCAN_SUFFIX = "_vh_clean_2.ply"
VERT_SUFFIX = "_vert.npy"
BOXES_SUFFIX = "_bbox.npy"
PROPOSAL_SUFFIXES = ("_proposals.npy", "_proposals.json")


class Scan(NamedTuple):
  points: np.ndarray  # float32[P, 3], aligned frame
  colors: np.ndarray | None  # uint8[P, 3] or None


class Boxes(NamedTuple):
  boxes: np.ndarray  # float64[K, 7]
  labels: np.ndarray | None  # int64[K] class indices (ground truth)
  objectness: np.ndarray | None  # float64[K] (proposals)


# --- PLY -------------------------------------------------------------------

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}


def _ply_header(f, path):
  """-> (format, [(element, count, [(property, type or None for lists)])])."""
  first = f.readline()
  if first.strip() != b"ply":
    raise UserError(f"{path}: not a PLY file (it does not start with 'ply').")
  fmt, elements = None, []
  while True:
    line = f.readline()
    if not line:
      raise UserError(f"{path}: the PLY header has no end_header line; the file is truncated.")
    words = line.decode("ascii", "replace").split()
    if not words or words[0] in ("comment", "obj_info"):
      continue
    if words[0] == "end_header":
      break
    if words[0] == "format" and len(words) >= 2:
      fmt = words[1]
    elif words[0] == "element" and len(words) == 3 and words[2].isdigit():
      elements.append((words[1], int(words[2]), []))
    elif words[0] == "property" and elements and len(words) == 3 and words[1] in _PLY_TYPES:
      elements[-1][2].append((words[2], _PLY_TYPES[words[1]]))
    elif words[0] == "property" and elements and len(words) == 5 and words[1] == "list":
      elements[-1][2].append((words[4], None))
    else:
      raise UserError(f"{path}: cannot parse the PLY header line {line.strip()!r}.")
  if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
    raise UserError(f"{path}: unsupported PLY format {fmt!r}.")
  return fmt, elements


def read_ply_vertices(path: str) -> Scan:
  """The vertices of a PLY file (x, y, z and red, green, blue if present).

  Only the vertex element is read; faces are skipped. It must come before any
  element with list properties (as in ScanNet's and every common PLY).
  """
  try:
    with open(path, "rb") as f:
      fmt, elements = _ply_header(f, path)
      names = [e[0] for e in elements]
      if "vertex" not in names:
        raise UserError(f"{path}: the PLY file has no vertex element.")
      before = elements[:names.index("vertex")]
      if any(t is None for e in before for _, t in e[2]):
        raise UserError(f"{path}: a list element comes before the vertices; unsupported.")
      _, count, props = elements[names.index("vertex")]
      if any(t is None for _, t in props):
        raise UserError(f"{path}: the vertex element has list properties; unsupported.")
      fields = [p for p, _ in props]
      if not {"x", "y", "z"} <= set(fields):
        raise UserError(f"{path}: the vertices have no x, y, z properties (they have {fields}).")
      if fmt == "ascii":
        for _, n, _ in before:
          for _ in range(n):
            f.readline()
        rows = [f.readline() for _ in range(count)]
        try:
          table = np.array([r.split()[:len(fields)] for r in rows], np.float64).reshape(count, len(fields))
        except ValueError as e:
          raise UserError(f"{path}: the vertex rows are not {len(fields)} numbers each; "
                          "the file is truncated or corrupt.") from e
        column = {p: table[:, i] for i, p in enumerate(fields)}
      else:
        order = "<" if fmt == "binary_little_endian" else ">"
        for _, n, pr in before:
          f.seek(n * np.dtype([(p, order + t) for p, t in pr]).itemsize, os.SEEK_CUR)
        dtype = np.dtype([(p, order + t) for p, t in props])
        data = f.read(count * dtype.itemsize)
        if len(data) < count * dtype.itemsize:
          raise UserError(f"{path}: the file ends inside its {count} vertices; it is truncated.")
        table = np.frombuffer(data, dtype)
        column = {p: table[p] for p in fields}
  except OSError as e:
    raise UserError(f"{path}: cannot read the file: {e}") from e
  points = np.stack([column["x"], column["y"], column["z"]], -1).astype(np.float32)
  colors = None
  if {"red", "green", "blue"} <= set(fields):
    colors = np.clip(np.stack([column["red"], column["green"], column["blue"]], -1), 0, 255).astype(np.uint8)
  if not len(points):
    raise UserError(f"{path}: the PLY file has no vertices.")
  if not np.isfinite(points).all():
    raise UserError(f"{path}: {int((~np.isfinite(points)).any(-1).sum())} vertices have NaN or inf "
                    "coordinates; the file is corrupt.")
  return Scan(points, colors)


def write_ply(path: str, points: np.ndarray, colors: np.ndarray | None = None,
              faces: np.ndarray | None = None) -> None:
  """A binary little-endian PLY laid out as ScanNet's `_vh_clean_2.ply`.

  Vertices are float x, y, z and uchar red, green, blue, alpha (255); faces
  are `list uchar int vertex_indices` (none unless given).
  """
  points = np.asarray(points, np.float32)
  colors = np.full((len(points), 3), 200, np.uint8) if colors is None else np.asarray(colors, np.uint8)
  faces = np.zeros((0, 3), np.int32) if faces is None else np.asarray(faces, np.int32)
  header = ("ply\nformat binary_little_endian 1.0\ncomment VCGLIB generated\n"
            f"element vertex {len(points)}\n"
            "property float x\nproperty float y\nproperty float z\n"
            "property uchar red\nproperty uchar green\nproperty uchar blue\nproperty uchar alpha\n"
            f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n")
  vertex = np.zeros(len(points), [("xyz", "<f4", 3), ("rgba", "u1", 4)])
  vertex["xyz"] = points
  vertex["rgba"][:, :3] = colors
  vertex["rgba"][:, 3] = 255
  face = np.zeros(len(faces), [("n", "u1"), ("v", "<i4", 3)])
  face["n"] = 3
  face["v"] = faces
  with open(path, "wb") as f:
    f.write(header.encode("ascii"))
    f.write(vertex.tobytes())
    f.write(face.tobytes())


# --- Scans ------------------------------------------------------------------

def read_axis_alignment(path: str) -> np.ndarray:
  """The 4x4 `axisAlignment` of a ScanNet `<scene>.txt`; identity if it has none."""
  lines = checks.read_text_lines(path)
  for line in lines:
    key, sep, value = line.partition("=")
    if sep and key.strip() == "axisAlignment":
      try:
        matrix = np.array([float(v) for v in value.split()], np.float64)
      except ValueError:
        matrix = np.zeros(0)
      if matrix.shape != (16,) or not np.isfinite(matrix).all():
        raise UserError(f"{path}: axisAlignment must be 16 numbers (a 4x4 matrix, row by row), "
                        f"got {value.strip()!r}.")
      return matrix.reshape(4, 4)
  return np.eye(4)


def write_axis_alignment(path: str, matrix: np.ndarray) -> None:
  """A ScanNet-style `<scene>.txt` holding only the axisAlignment line."""
  with open(path, "w") as f:
    f.write("axisAlignment = " + " ".join(f"{v:.9g}" for v in np.asarray(matrix).reshape(-1)) + "\n")


def apply_alignment(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
  """float[P, 3] -> float32[P, 3]: homogeneous points times matrix^T (VoteNet's rule)."""
  points = np.asarray(points, np.float64)
  return (points @ matrix[:3, :3].T + matrix[:3, 3]).astype(np.float32)


def read_scan(scan_path: str, meta_path: str | None = None) -> Scan:
  """A scan as aligned points (and colours): a ply (+ meta) or a VoteNet `_vert.npy`."""
  if scan_path.endswith(".npy"):
    array = point_files.read_array_file(scan_path)
    if array.ndim != 2 or array.shape[1] < 3 or not len(array) or not np.issubdtype(array.dtype, np.number):
      raise UserError(f"{scan_path}: expected a float array [P, 3 or 6] (x y z [r g b]), got shape "
                      f"{array.shape} and dtype {array.dtype}.")
    points = np.asarray(array[:, :3], np.float32)
    if not np.isfinite(points).all():
      raise UserError(f"{scan_path}: NaN or inf coordinates; the file is corrupt.")
    colors = np.clip(array[:, 3:6], 0, 255).astype(np.uint8) if array.shape[1] >= 6 else None
    return Scan(points, colors)
  scan = read_ply_vertices(scan_path)
  if meta_path:
    scan = Scan(apply_alignment(scan.points, read_axis_alignment(meta_path)), scan.colors)
  return scan


# --- Boxes ------------------------------------------------------------------

def _check_boxes(boxes: np.ndarray, path: str):
  if not np.isfinite(boxes).all():
    row = int(np.nonzero(~np.isfinite(boxes).all(1))[0][0])
    raise UserError(f"{path}: row {row} has NaN or inf values: {boxes[row].tolist()}.")
  if (boxes[:, 3:6] < 0).any():
    row = int(np.nonzero((boxes[:, 3:6] < 0).any(1))[0][0])
    raise UserError(f"{path}: row {row} has a negative size: {boxes[row, 3:6].tolist()}.")


def read_gt_boxes(path: str, class_names, label_format: str = "nyu40") -> Boxes:
  """Ground-truth boxes and class indices of a `<scene>_bbox.npy`.

  Args:
    path: the file; float[G, 7] [cx, cy, cz, dx, dy, dz, label] or float[G, 8]
      [cx, cy, cz, dx, dy, dz, heading, label].
    class_names: the classes the indices refer to.
    label_format: "nyu40" (VoteNet/3DETR: NYU40 ids of the 18 ScanNet classes;
      needs `class_names` to be those 18) or "index" (0..C-1).
  """
  if label_format not in LABEL_FORMATS:
    raise UserError(f"label format {label_format!r}; use one of {', '.join(LABEL_FORMATS)}")
  array = point_files.read_array_file(path)
  if array.size == 0:
    return Boxes(np.zeros((0, 7)), np.zeros(0, np.int64), None)
  if array.ndim != 2 or array.shape[1] not in (7, 8) or not np.issubdtype(array.dtype, np.number):
    raise UserError(f"{path}: expected ground-truth boxes of shape [G, 7] (cx cy cz dx dy dz label) or "
                    f"[G, 8] (... heading label), got shape {array.shape} and dtype {array.dtype}.")
  array = np.asarray(array, np.float64)
  boxes = np.zeros((len(array), 7))
  boxes[:, :array.shape[1] - 1] = array[:, :-1]
  _check_boxes(boxes, path)
  raw = array[:, -1]
  if not np.all(raw == np.round(raw)):
    row = int(np.nonzero(raw != np.round(raw))[0][0])
    raise UserError(f"{path}: row {row} has label {raw[row]!r}; labels must be whole numbers.")
  raw = raw.astype(np.int64)
  if label_format == "nyu40":
    if tuple(class_names) != SCANNET18_CLASSES:
      raise UserError(f"{path}: NYU40 labels map to ScanNet's 18 classes, but the classes are "
                      f"{', '.join(class_names)}; use label_format=index for files of class indices.")
    lookup = {nyu: i for i, nyu in enumerate(SCANNET18_NYU40_IDS)}
    bad = [int(v) for v in raw if int(v) not in lookup]
    if bad:
      raise UserError(f"{path}: label {bad[0]} is not the NYU40 id of a ScanNet benchmark class "
                      f"({', '.join(map(str, SCANNET18_NYU40_IDS))}); if the file holds class "
                      "indices 0..17, use label_format=index.")
    labels = np.array([lookup[int(v)] for v in raw], np.int64)
  else:
    bad = (raw < 0) | (raw >= len(class_names))
    if bad.any():
      raise UserError(f"{path}: label {int(raw[bad][0])} is not a class index 0..{len(class_names) - 1} "
                      f"(classes: {', '.join(class_names)}).")
    labels = raw
  return Boxes(boxes, labels, None)


def read_proposals(path: str) -> Boxes:
  """Proposal boxes and objectness of a `<scene>_proposals.npy` or `.json`."""
  if path.endswith(".json"):
    try:
      with open(path, "r", encoding="utf-8") as f:
        content = json.load(f)
    except OSError as e:
      raise UserError(f"{path}: cannot read the file: {e}") from e
    except ValueError as e:
      raise UserError(f"{path}: not valid JSON ({e}).") from e
    if not isinstance(content, dict) or "boxes" not in content:
      raise UserError(f'{path}: expected a JSON object {{"boxes": [[cx, cy, cz, dx, dy, dz(, heading)], '
                      '...], "objectness": [...]}.')
    try:
      boxes = np.asarray(content["boxes"], np.float64)
      objectness = (np.ones(len(boxes)) if content.get("objectness") is None
                    else np.asarray(content["objectness"], np.float64))
    except (ValueError, TypeError) as e:
      raise UserError(f"{path}: boxes and objectness must be numbers ({e}).") from e
    if boxes.size == 0:
      boxes = boxes.reshape(0, 7)
    if boxes.ndim != 2 or boxes.shape[1] not in (6, 7):
      raise UserError(f"{path}: each box must have 6 (axis-aligned) or 7 (with heading) numbers; "
                      f"got boxes of shape {boxes.shape}.")
    if objectness.shape != (len(boxes),):
      raise UserError(f"{path}: {len(boxes)} boxes but objectness of shape {objectness.shape}.")
    if boxes.shape[1] == 6:
      boxes = np.concatenate([boxes, np.zeros((len(boxes), 1))], 1)
  else:
    array = point_files.read_array_file(path)
    if array.size == 0:
      array = np.zeros((0, 8))
    if array.ndim != 2 or array.shape[1] != 8 or not np.issubdtype(array.dtype, np.number):
      raise UserError(f"{path}: expected proposals of shape [K, 8] (cx cy cz dx dy dz heading "
                      f"objectness), got shape {array.shape} and dtype {array.dtype}.")
    array = np.asarray(array, np.float64)
    boxes, objectness = array[:, :7], array[:, 7]
  _check_boxes(np.concatenate([boxes, objectness[:, None]], 1), path)
  if ((objectness < 0) | (objectness > 1)).any():
    row = int(np.nonzero((objectness < 0) | (objectness > 1))[0][0])
    raise UserError(f"{path}: objectness {objectness[row]!r} of box {row} is outside [0, 1].")
  return Boxes(boxes, None, objectness)


def write_proposals(path: str, boxes: np.ndarray, objectness: np.ndarray) -> None:
  """Writes proposals as `.npy` ([K, 8]) or `.json`, by the extension of `path`."""
  boxes = np.asarray(boxes, np.float64)
  if boxes.shape[1] == 6:
    boxes = np.concatenate([boxes, np.zeros((len(boxes), 1))], 1)
  if path.endswith(".json"):
    with open(path, "w") as f:
      json.dump({"boxes": boxes.round(6).tolist(), "objectness": np.round(objectness, 6).tolist()}, f)
  else:
    np.save(path, np.concatenate([boxes, np.asarray(objectness, np.float64)[:, None]], 1))


# --- Scene folders ----------------------------------------------------------

class SceneFiles(NamedTuple):
  name: str
  scan: str  # `_vh_clean_2.ply` or `_vert.npy`
  meta: str | None  # `<scene>.txt` beside the ply, if any
  boxes: str  # `_bbox.npy`
  proposals: str  # `_proposals.npy` or `.json`


def _find(directory: str, scene: str, filename: str) -> str | None:
  for candidate in (os.path.join(directory, scene, filename), os.path.join(directory, filename)):
    if os.path.isfile(candidate):
      return candidate
  return None


def find_scenes(scans_dir: str, boxes_dir: str = "", proposals_dir: str = "",
                scenes: str = "") -> list[SceneFiles]:
  """The scenes of a folder: every `<scene>_bbox.npy` under `boxes_dir`.

  Args:
    scans_dir: where the scans are (`<scene>_vh_clean_2.ply`, optional
      `<scene>.txt`, or `<scene>_vert.npy`), flat or one folder per scene.
    boxes_dir: where the `<scene>_bbox.npy` are (default: `scans_dir`).
    proposals_dir: where the `<scene>_proposals.npy/.json` are (default: `boxes_dir`).
    scenes: comma-separated scene names to keep (default: all), in that order.

  Returns:
    `SceneFiles` sorted by name (or in the order of `scenes`).
  """
  scans_dir = os.path.expanduser(scans_dir)
  boxes_dir = os.path.expanduser(boxes_dir) or scans_dir
  proposals_dir = os.path.expanduser(proposals_dir) or boxes_dir
  for what, d in (("scans", scans_dir), ("ground-truth boxes", boxes_dir), ("proposals", proposals_dir)):
    if not d or not os.path.isdir(d):
      raise UserError(f"the folder of {what} {d!r} does not exist.")
  names = set()
  for entry in os.listdir(boxes_dir):
    if entry.endswith(BOXES_SUFFIX):
      names.add(entry[:-len(BOXES_SUFFIX)])
    elif os.path.isfile(os.path.join(boxes_dir, entry, entry + BOXES_SUFFIX)):
      names.add(entry)
  if scenes:
    wanted = [s.strip() for s in scenes.split(",") if s.strip()]
    missing = [s for s in wanted if s not in names]
    if missing:
      raise UserError(f"scene {missing[0]!r} has no {missing[0]}{BOXES_SUFFIX} in {boxes_dir}.")
    ordered = wanted
  else:
    ordered = sorted(names)
  if not ordered:
    raise UserError(f"{boxes_dir}: no <scene>{BOXES_SUFFIX} files (ground-truth boxes as VoteNet's "
                    "ScanNet preprocessing writes them).")
  found = []
  for name in ordered:
    scan = _find(scans_dir, name, name + SCAN_SUFFIX)
    meta = _find(scans_dir, name, name + ".txt") if scan else None
    scan = scan or _find(scans_dir, name, name + VERT_SUFFIX) or _find(boxes_dir, name, name + VERT_SUFFIX)
    if scan is None:
      raise UserError(f"scene {name}: no scan in {scans_dir} (expected {name}{SCAN_SUFFIX} or "
                      f"{name}{VERT_SUFFIX}, flat or in a folder {name}/).")
    proposals = next(filter(None, (_find(proposals_dir, name, name + s) for s in PROPOSAL_SUFFIXES)), None)
    if proposals is None:
      raise UserError(f"scene {name}: no proposals in {proposals_dir} (expected "
                      f"{name}{PROPOSAL_SUFFIXES[0]} or {name}{PROPOSAL_SUFFIXES[1]}).")
    found.append(SceneFiles(name, scan, meta, _find(boxes_dir, name, name + BOXES_SUFFIX), proposals))
  return found


def resolve_classes(spec: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
  """Class names and prompt names from `scannet18`, `primitives` or 'a,b,c'."""
  if spec == "scannet18":
    return SCANNET18_CLASSES, SCANNET18_PROMPT_NAMES
  if spec == "primitives":
    from clip2point_jax.data import primitives  # pylint: disable=g-import-not-at-top
    return tuple(primitives.CLASS_NAMES), tuple(primitives.CLASS_NAMES)
  names = tuple(n.strip() for n in spec.split(",") if n.strip())
  if len(names) < 2:
    raise UserError(f"classes={spec!r}: use scannet18, primitives or at least two comma-separated names.")
  return names, tuple(re.sub(r"[_]+", " ", n) for n in names)

