"""ShapeNet-55 as Point-BERT ships it, with CLIP2Point's optional renderings.

Clouds: `ShapeNet-55/{train,test}.txt` list `<synset>-<model>.npy` files of
`shapenet_pc/` (8192 points each). Each cloud is stored in a random order
(seeded per shape), so its first N points are a uniform subset.

Renderings (CLIP2Point's pre-training images): `<dir>/<synset>_<model>/
{0..9}.png`. Where a shape has all ten, `images` holds the ten PNG files as
bytes (decode with `decode_renderings`) and `has_images` is true; otherwise
`images` is empty. Broken or partial renderings are listed in the metadata.
"""

import io
import os
from typing import Optional

from absl import logging
import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

from clip2point_jax.data import checks
from clip2point_jax.data import point_files
from clip2point_jax.data import shapenet_classes
from clip2point_jax.data.builders import base
from clip2point_jax.errors import UserError

NUM_VIEWS = 10
_LISTS = "ShapeNet-55"
_CLOUDS = "shapenet_pc"
_RENDERING_DIRS = ("rendering", "Rendering")


def decode_renderings(pngs) -> np.ndarray:
  """PNG bytes of the views -> uint8[V, H, W, 3] RGB images."""
  return np.stack([np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
                   for png in pngs])


def _read_views(folder: str) -> list[bytes]:
  """The ten views' PNG bytes; raises UserError naming the bad file."""
  views = []
  for v in range(NUM_VIEWS):
    path = os.path.join(folder, f"{v}.png")
    try:
      with open(path, "rb") as f:
        data = f.read()
      with Image.open(io.BytesIO(data)) as image:
        image_format = image.format
        image.verify()
    # PIL signals a corrupt image with many exception types.
    except Exception as e:  # pylint: disable=broad-except
      raise UserError(f"{path}: missing or not an image ({e}).") from e
    if image_format != "PNG":
      raise UserError(f"{path}: a {image_format} image, expected PNG.")
    views.append(data)
  return views


class ShapeNet55(base.PointCloudBuilder, skip_registration=True):
  """ShapeNet-55: 41952 train and 10518 test clouds in 55 classes."""

  name = "shapenet55"
  CLASS_NAMES = shapenet_classes.CLASS_NAMES
  DEFAULT_NUM_POINTS = 8192
  POINT_ORDER = "uniform"
  OPTIONS = ("num_points_stored", "seed", "renderings_dir")
  MANUAL_DIR_HINT = "/path/to/ShapeNet55-34"
  HOMEPAGE = "https://github.com/lulutang0608/Point-BERT"
  DESCRIPTION = ("ShapeNet-55 point clouds (Point-BERT), optionally with "
                 "CLIP2Point's 10 rendered RGB views per shape.")
  CITATION = """@inproceedings{yu2022point,
  title={Point-BERT: Pre-training 3D Point Cloud Transformers with Masked
         Point Modeling},
  author={Yu, Xumin and Tang, Lulu and Rao, Yongming and Huang, Tiejun and
          Zhou, Jie and Lu, Jiwen},
  booktitle={CVPR}, year={2022}}"""
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Download ShapeNet55 as Point-BERT's DATASET.md says
(https://github.com/lulutang0608/Point-BERT/blob/master/DATASET.md) and unpack
it into manual_dir, giving manual_dir/ShapeNet-55/{train,test}.txt and
manual_dir/shapenet_pc/<synset>-<model>.npy (manual_dir may also hold them in
ShapeNet55-34/ or ShapeNet55/). Optionally unpack CLIP2Point's Rendering
archive (Google Drive link in its README) into manual_dir/rendering, giving
manual_dir/rendering/<synset>_<model>/{0..9}.png, or pass renderings_dir."""

  def __init__(self, *, renderings_dir: Optional[str] = None, **kwargs):
    if renderings_dir:
      renderings_dir = os.path.abspath(os.path.expanduser(renderings_dir))
      if not os.path.isdir(renderings_dir):
        raise UserError(f"renderings_dir {renderings_dir} is not a folder.")
    self._renderings_dir = renderings_dir or None
    super().__init__(**kwargs)

  @property
  def options(self):
    return {**super().options, "renderings_dir": self._renderings_dir}

  def _extra_features(self):
    return {
        # Raw PNG bytes: decoding ten 224x224 views on every read would slow
        # down readers that only want points.
        "images": tfds.features.Tensor(shape=(None,), dtype=np.object_),
        "has_images": np.bool_,
    }

  def _fresh_metadata(self):
    return {**super()._fresh_metadata(), "renderings": {}}

  def _splits(self, dl_manager):
    root = self._manual_root(dl_manager, os.path.join(_LISTS, "train.txt"),
                             ("ShapeNet55-34", "ShapeNet55"))
    candidates = [os.path.join(d, n) for n in _RENDERING_DIRS
                  for d in (os.fspath(dl_manager.manual_dir), root)]
    renderings = self._renderings_dir or next(
        (d for d in candidates if os.path.isdir(d)), None)
    self.info.metadata["renderings"]["dir"] = renderings
    return {s: self._generate_examples(root, s, self._list(root, s),
                                       renderings)
            for s in ("train", "test")}

  def _list(self, root: str, split: str) -> list[str]:
    path = os.path.join(root, _LISTS, f"{split}.txt")
    if not os.path.exists(path):
      raise UserError(f"{self.name}: {path} is missing; is the archive fully "
                      "unpacked?")
    with open(path) as f:
      names = [line.strip() for line in f if line.strip()]
    if not names:
      raise UserError(f"{path}: lists no shapes for split {split!r}.")
    return names

  def _cloud(self, path: str, shape_id: str) -> np.ndarray:
    cloud = point_files.as_cloud(point_files.read_array_file(path), path)
    checks.require_finite(cloud, path)
    if len(cloud) < self._num_points:
      raise UserError(f"{path}: {len(cloud)} points, fewer than "
                      f"num_points_stored={self._num_points}.")
    order = checks.shape_rng(self._seed, shape_id).permutation(len(cloud))
    return cloud[order[:self._num_points]].astype(np.float32)

  def _generate_examples(self, root, split, names, renderings):
    stats = {"with_images": 0, "without_images": 0, "broken": []}
    self.info.metadata["renderings"][split] = stats
    count = 0
    for name in self._progress(names, split):
      shape_id = name[:-4] if name.endswith(".npy") else name
      synset = shape_id.split("-", 1)[0]
      if synset not in shapenet_classes.LABEL_OF_SYNSET or "-" not in shape_id:
        self._skip(split, shape_id, f"not <synset>-<model> with a ShapeNet-55 "
                   f"synset: {name!r}")
        continue
      try:
        points = self._cloud(os.path.join(root, _CLOUDS, name), shape_id)
      except UserError as e:
        self._skip(split, shape_id, str(e))
        continue
      views = []
      folder = renderings and os.path.join(renderings,
                                           shape_id.replace("-", "_", 1))
      if folder and os.path.isdir(folder):
        try:
          views = _read_views(folder)
        except UserError as e:
          logging.warning("%s %s: storing %s without images: %s", self.name,
                          split, shape_id, e)
          stats["broken"].append({"id": shape_id, "reason": str(e)})
      stats["with_images" if views else "without_images"] += 1
      count += 1
      yield shape_id, {
          "points": points,
          "label": shapenet_classes.LABEL_OF_SYNSET[synset],
          "id": shape_id,
          "images": np.array(views, dtype=object),
          "has_images": bool(views),
      }
    self._require_any(split, count, os.path.join(root, _CLOUDS))
