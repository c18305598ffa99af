"""ModelNet40 as PointNet ships it: modelnet40_ply_hdf5_2048.

2048 points per shape (sampled and normalised by PointNet's authors), stored
in the file's order; PointNet-style code takes the first 1024.
"""

import os

from clip2point_jax.data import classnames
from clip2point_jax.data.builders import h5_base
from clip2point_jax.data.builders import modelnet
from clip2point_jax.errors import UserError

_FOLDER = "modelnet40_ply_hdf5_2048"


class ModelNet40H5(h5_base.H5Builder, skip_registration=True):
  """PointNet's ModelNet40 HDF5 release: 9840 train and 2468 test clouds."""

  name = "modelnet40_h5"
  CLASS_NAMES = classnames.MODELNET40
  POINT_ORDER = "source"
  MANUAL_DIR_HINT = "/path/to/dir_with_modelnet40_ply_hdf5_2048"
  HOMEPAGE = "https://github.com/charlesq34/pointnet"
  CITATION = modelnet.ModelNet40.CITATION
  DESCRIPTION = "ModelNet40 point clouds from PointNet's HDF5 files."
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Download modelnet40_ply_hdf5_2048.zip (about 420 MB; PointNet's link
https://shapenet.cs.stanford.edu/media/modelnet40_ply_hdf5_2048.zip is often
down, so use a mirror of the same file) and unzip it into manual_dir, giving
manual_dir/{_FOLDER}/ply_data_{{train,test}}N.h5 and {{train,test}}_files.txt."""

  def _splits(self, dl_manager):
    root = self._manual_root(dl_manager, "train_files.txt", (_FOLDER,))
    self._check_shape_names(root)
    return {s: self._generate_examples(s, self._files(root, s))
            for s in ("train", "test")}

  def _files(self, root: str, split: str) -> list[str]:
    """The split's .h5 files; the lists name them by the authors' paths."""
    listing = os.path.join(root, f"{split}_files.txt")
    if not os.path.exists(listing):
      raise UserError(f"{self.name}: {listing} is missing; is the archive "
                      "fully unpacked?")
    with open(listing) as f:
      names = [os.path.basename(line.strip()) for line in f if line.strip()]
    if not names:
      raise UserError(f"{listing}: lists no .h5 files for split {split!r}.")
    paths = [os.path.join(root, n) for n in names]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
      raise UserError(f"{listing} lists {', '.join(missing)}, which is "
                      "missing; is the archive fully unpacked?")
    return paths

  def _check_shape_names(self, root: str):
    """shape_names.txt, where present, must match our label order."""
    path = os.path.join(root, "shape_names.txt")
    if not os.path.exists(path):
      return
    with open(path) as f:
      names = [line.strip() for line in f if line.strip()]
    expected = [modelnet.class_folder(n) for n in self.CLASS_NAMES]
    if names != expected:
      raise UserError(f"{path}: class names {names[:5]}... differ from "
                      f"ModelNet40's {expected[:5]}...; wrong archive?")
