"""ModelNet40, ModelNet10 and aligned ModelNet40 from Princeton's .off meshes.

Layout: `<class>/{train,test}/<class>_NNNN.off`. Each mesh is sampled once at
prepare time (S = 8192 points by default, uniform over its surface, seeded per
shape), stored in random order, so the first N of them are a uniform sample.
"""

import os

from clip2point_jax.data import classnames
from clip2point_jax.data import checks
from clip2point_jax.data import off
from clip2point_jax.data.builders import base
from clip2point_jax.errors import UserError

_SPLITS = ("train", "test")
_CITATION = """@inproceedings{wu20153d,
  title={3D ShapeNets: A Deep Representation for Volumetric Shapes},
  author={Wu, Zhirong and Song, Shuran and Khosla, Aditya and Yu, Fisher and
          Zhang, Linguang and Tang, Xiaoou and Xiao, Jianxiong},
  booktitle={CVPR}, year={2015}}"""


def class_folder(name: str) -> str:
  """Folder of a class: prompt names use spaces, ModelNet folders '_'."""
  return name.replace(" ", "_")


class _ModelNetOff(base.PointCloudBuilder, skip_registration=True):
  """Shared reader; subclasses set names, classes and the archive."""

  DEFAULT_NUM_POINTS = 8192
  POINT_ORDER = "uniform"
  HOMEPAGE = "https://modelnet.cs.princeton.edu/"
  CITATION = _CITATION
  # Names the archive's top folder may have inside manual_dir.
  FOLDERS: tuple[str, ...] = ()

  def _splits(self, dl_manager):
    marker = class_folder(self.CLASS_NAMES[0])
    root = self._manual_root(dl_manager, marker, self.FOLDERS)
    return {s: self._generate_examples(root, s, self._list(root, s))
            for s in _SPLITS}

  def _list(self, root: str, split: str) -> list[tuple[str, int]]:
    """(path relative to root, label) of every mesh of `split`, sorted."""
    files = []
    for label, name in enumerate(self.CLASS_NAMES):
      folder = os.path.join(root, class_folder(name))
      if not os.path.isdir(folder):
        raise UserError(f"{self.name}: class folder {folder} is missing; is "
                        "the archive fully unpacked?")
      split_dir = os.path.join(folder, split)
      names = os.listdir(split_dir) if os.path.isdir(split_dir) else []
      files += [(f"{class_folder(name)}/{split}/{f}", label)
                for f in sorted(names) if f.lower().endswith(".off")]
    if not files:
      raise UserError(f"{self.name}: no .off files for split {split!r} under "
                      f"{root}/<class>/{split}/; is the archive fully "
                      "unpacked?")
    return files

  def _generate_examples(self, root, split, files):
    count = 0
    for rel, label in self._progress(files, split):
      try:
        points = off.sample_off(os.path.join(root, rel), self._num_points,
                                checks.shape_rng(self._seed, rel))
      except UserError as e:
        self._skip(split, rel, str(e))
        continue
      count += 1
      yield rel, {"points": points, "label": label, "id": rel}
    self._require_any(split, count, root)


class ModelNet40(_ModelNetOff, skip_registration=True):
  """Princeton ModelNet40: 9843 train and 2468 test meshes in 40 classes."""

  name = "modelnet40"
  CLASS_NAMES = classnames.MODELNET40
  FOLDERS = ("ModelNet40",)
  MANUAL_DIR_HINT = "/path/to/dir_with_ModelNet40"
  DESCRIPTION = "ModelNet40 meshes, surface-sampled to point clouds."
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Download ModelNet40.zip (about 2 GB) from https://modelnet.cs.princeton.edu/
(http://modelnet.cs.princeton.edu/ModelNet40.zip) and unzip it into manual_dir,
giving manual_dir/ModelNet40/<class>/{train,test}/<class>_NNNN.off."""


class ModelNet10(_ModelNetOff, skip_registration=True):
  """Princeton ModelNet10: 3991 train and 908 test meshes in 10 classes."""

  name = "modelnet10"
  CLASS_NAMES = classnames.MODELNET10
  FOLDERS = ("ModelNet10",)
  MANUAL_DIR_HINT = "/path/to/dir_with_ModelNet10"
  DESCRIPTION = "ModelNet10 meshes, surface-sampled to point clouds."
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Download ModelNet10.zip (about 500 MB) from https://modelnet.cs.princeton.edu/
(http://3dvision.princeton.edu/projects/2014/3DShapeNets/ModelNet10.zip) and
unzip it into manual_dir, giving
manual_dir/ModelNet10/<class>/{train,test}/<class>_NNNN.off."""


class ModelNet40Aligned(_ModelNetOff, skip_registration=True):
  """ModelNet40 with manually aligned orientations (Sedaghat et al., ORION).

  CLIP2Point's zero-shot and few-shot numbers use this release.
  """

  name = "modelnet40_aligned"
  CLASS_NAMES = classnames.MODELNET40
  FOLDERS = ("ModelNet40_manually_aligned", "modelnet40_manually_aligned",
             "ModelNet40_Align", "ModelNet40")
  MANUAL_DIR_HINT = "/path/to/modelnet40_manually_aligned"
  HOMEPAGE = "https://github.com/lmb-freiburg/orion"
  DESCRIPTION = ("ModelNet40 with manually aligned meshes (ORION), "
                 "surface-sampled to point clouds.")
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Download modelnet40_manually_aligned.tar (ORION, linked from CLIP2Point's
README: https://lmb.informatik.uni-freiburg.de/resources/datasets/ORION/
modelnet40_manually_aligned.tar) and unpack it with
`tar -xf modelnet40_manually_aligned.tar -C <manual_dir>`, giving
manual_dir/<class>/{train,test}/<class>_NNNN.off (a top folder named
ModelNet40_manually_aligned, ModelNet40_Align or ModelNet40 also works)."""
