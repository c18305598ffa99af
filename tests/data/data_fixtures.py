"""Writers of tiny dataset files in the exact formats of the real releases."""

import io
import os

import h5py
import numpy as np
from PIL import Image

# Quads of a unit cube on [0, 1]^3; OFF files keep them as 4-gons.
_CUBE_VERTICES = np.array([[x, y, z] for x in (0, 1) for y in (0, 1)
                           for z in (0, 1)], np.float64)
_CUBE_QUADS = [[0, 1, 3, 2], [4, 6, 7, 5], [0, 4, 5, 1], [2, 3, 7, 6],
               [0, 2, 6, 4], [1, 5, 7, 3]]


def random_box(rng: np.random.Generator):
  """A random axis-aligned box as (vertices float[8, 3], quads, lo, hi)."""
  lo = rng.uniform(-1, 0, 3)
  hi = lo + rng.uniform(0.2, 1.5, 3)
  return lo + _CUBE_VERTICES * (hi - lo), _CUBE_QUADS, lo, hi


def on_box_surface(points: np.ndarray, lo, hi, tol=1e-4) -> np.ndarray:
  """bool[N]: inside the box and on one of its faces."""
  inside = np.all((points >= lo - tol) & (points <= hi + tol), axis=1)
  on_face = np.any(np.isclose(points, lo, atol=tol)
                   | np.isclose(points, hi, atol=tol), axis=1)
  return inside & on_face


def off_text(vertices, polygons, malformed_header=False) -> str:
  """An .off file; `malformed_header` puts the counts after "OFF" as some
  ModelNet files do ("OFF8 6 0")."""
  counts = f"{len(vertices)} {len(polygons)} 0"
  lines = [f"OFF{counts}"] if malformed_header else ["OFF", counts]
  lines += [" ".join(f"{c:.6f}" for c in v) for v in vertices]
  lines += [" ".join(str(i) for i in [len(p)] + list(p)) for p in polygons]
  return "\n".join(lines) + "\n"


def write_off(path, vertices, polygons, malformed_header=False):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    f.write(off_text(vertices, polygons, malformed_header))
  return path


def write_modelnet_tree(root, class_folders, counts, rng):
  """<root>/<class>/<split>/<class>_NNNN.off random boxes, every third file
  with the malformed header. Returns {relative path: (lo, hi)}."""
  boxes = {}
  number = 0
  for folder in class_folders:
    for split, count in counts.items():
      for _ in range(count):
        number += 1
        rel = f"{folder}/{split}/{folder}_{number:04d}.off"
        vertices, quads, lo, hi = random_box(rng)
        write_off(os.path.join(root, rel), vertices, quads,
                  malformed_header=number % 3 == 0)
        boxes[rel] = (lo, hi)
  return boxes


def write_h5(path, data, label, **extra):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with h5py.File(path, "w") as f:
    f.create_dataset("data", data=data)
    f.create_dataset("label", data=label)
    for key, value in extra.items():
      f.create_dataset(key, data=value)
  return path


def random_clouds(rng, n, num_points=2048):
  """float32[n, P, 3] clouds of distinct shapes (scaled, shifted gaussians)."""
  scale = rng.uniform(0.2, 1.0, (n, 1, 3))
  return (rng.normal(size=(n, num_points, 3)) * scale
          + rng.uniform(-1, 1, (n, 1, 3))).astype(np.float32)


def write_pointnet_h5_tree(root, rng, sizes=None, num_classes=40):
  """PointNet's modelnet40_ply_hdf5_2048 layout under root; returns
  {basename: (data, label)}. The file lists use the authors' paths."""
  sizes = sizes or {"ply_data_train0.h5": 5, "ply_data_train1.h5": 4,
                    "ply_data_test0.h5": 3}
  folder = os.path.join(root, "modelnet40_ply_hdf5_2048")
  files = {}
  for name, n in sizes.items():
    data = random_clouds(rng, n)
    label = rng.integers(0, num_classes, (n, 1)).astype(np.uint8)
    write_h5(os.path.join(folder, name), data, label,
             normal=rng.normal(size=data.shape).astype(np.float32))
    files[name] = (data, label)
  for split in ("train", "test"):
    with open(os.path.join(folder, f"{split}_files.txt"), "w") as f:
      for name in sizes:
        if f"_{split}" in name:
          f.write(f"data/modelnet40_ply_hdf5_2048/{name}\n")
  return files


def write_scanobjectnn_tree(root, rng, folder="main_split", suffix="",
                            sizes=(6, 4)):
  """h5_files/<folder>/{training,test}_objectdataset<suffix>.h5; returns
  {"train": (data, label), "test": (...)}."""
  out = {}
  for split, prefix, n in (("train", "training", sizes[0]),
                           ("test", "test", sizes[1])):
    data = random_clouds(rng, n)
    label = rng.integers(0, 15, n).astype(np.int64)
    write_h5(os.path.join(root, "h5_files", folder,
                          f"{prefix}_objectdataset{suffix}.h5"), data, label,
             mask=np.zeros((n, 2048), np.int32))
    out[split] = (data, label)
  return out


def png_bytes(rng, size=224) -> bytes:
  image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
  buf = io.BytesIO()
  Image.fromarray(image).save(buf, format="PNG")
  return buf.getvalue()


def write_shapenet_tree(root, rng, shapes, num_points=8192):
  """Point-BERT's ShapeNet55-34 layout under root.

  Args:
    shapes: {split: ["<synset>-<model>", ...]}; each gets an .npy cloud.

  Returns:
    {shape id: float32[num_points, 3]}.
  """
  base = os.path.join(root, "ShapeNet55-34")
  os.makedirs(os.path.join(base, "ShapeNet-55"), exist_ok=True)
  os.makedirs(os.path.join(base, "shapenet_pc"), exist_ok=True)
  clouds = {}
  for split, ids in shapes.items():
    with open(os.path.join(base, "ShapeNet-55", f"{split}.txt"), "w") as f:
      f.write("".join(f"{i}.npy\n" for i in ids))
    for shape_id in ids:
      cloud = random_clouds(rng, 1, num_points)[0]
      np.save(os.path.join(base, "shapenet_pc", f"{shape_id}.npy"), cloud)
      clouds[shape_id] = cloud
  return clouds


def write_renderings(folder, rng, views=range(10), size=224):
  """<folder>/{v}.png for each view; returns {view: png bytes}."""
  os.makedirs(folder, exist_ok=True)
  out = {}
  for v in views:
    out[v] = png_bytes(rng, size)
    with open(os.path.join(folder, f"{v}.png"), "wb") as f:
      f.write(out[v])
  return out
