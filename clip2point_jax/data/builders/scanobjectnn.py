"""ScanObjectNN's h5_files: three variants of 15 classes of scanned objects.

The 2048 points of each object are stored in farthest point order (from point
0), so the first N stored points ARE the N-point FPS of the object: readers
take a prefix instead of running FPS (prefixes of an FPS order are FPS).
"""

import os

import jax
import numpy as np

from clip2point_jax.data import classnames
from clip2point_jax.data import fps
from clip2point_jax.data.builders import h5_base
from clip2point_jax.errors import UserError

_FILES = {"train": "training_objectdataset{}.h5", "test": "test_objectdataset{}.h5"}
# Objects per FPS call: big enough to vectorise, small enough for the cache.
_FPS_CHUNK = 64
# The jitted JAX FPS gives the numpy one's indices about 7x faster on CPU.
_fps_indices = jax.jit(fps.farthest_point_indices_jax, static_argnums=1)
_CITATION = """@inproceedings{uy2019revisiting,
  title={Revisiting Point Cloud Classification: A New Benchmark Dataset and
         Classification Model on Real-World Data},
  author={Uy, Mikaela Angelina and Pham, Quang-Hieu and Hua, Binh-Son and
          Nguyen, Duc Thanh and Yeung, Sai-Kit},
  booktitle={ICCV}, year={2019}}"""
_INSTRUCTIONS = """\
Request ScanObjectNN from https://hkust-vgd.github.io/scanobjectnn/ (the
authors send a link), download h5_files.zip and unzip it into manual_dir,
giving manual_dir/h5_files/{folder}/{{training,test}}_objectdataset{suffix}.h5
(manual_dir may also be the h5_files folder itself)."""


class _ScanObjectNN(h5_base.H5Builder, skip_registration=True):
  """One variant: a folder of h5_files and a file-name suffix."""

  CLASS_NAMES = classnames.SCANOBJECTNN
  POINT_ORDER = "fps"
  HOMEPAGE = "https://hkust-vgd.github.io/scanobjectnn/"
  CITATION = _CITATION
  MANUAL_DIR_HINT = "/path/to/dir_with_h5_files"
  FOLDER = "main_split"
  SUFFIX = ""

  def _splits(self, dl_manager):
    train = os.path.join(self.FOLDER, _FILES["train"].format(self.SUFFIX))
    root = self._manual_root(dl_manager, train, ("h5_files",))
    paths = {split: os.path.join(root, self.FOLDER, name.format(self.SUFFIX))
             for split, name in _FILES.items()}
    for path in paths.values():
      if not os.path.exists(path):
        raise UserError(f"{self.name}: {path} is missing; is h5_files.zip "
                        "fully unpacked?")
    return {split: self._generate_examples(split, [path])
            for split, path in paths.items()}

  def _order(self, points: np.ndarray) -> np.ndarray:
    chunks = []
    for i in range(0, len(points), _FPS_CHUNK):
      chunk = points[i:i + _FPS_CHUNK]
      idx = np.asarray(_fps_indices(chunk, self._num_points))
      chunks.append(np.take_along_axis(chunk, idx[..., None], axis=1))
    return np.concatenate(chunks)


class ScanObjectNNObjBg(_ScanObjectNN, skip_registration=True):
  """OBJ_BG: objects with their background, 2309 train and 581 test."""

  name = "scanobjectnn_objbg"
  DESCRIPTION = "ScanObjectNN OBJ_BG (main_split), FPS-ordered points."
  MANUAL_DOWNLOAD_INSTRUCTIONS = _INSTRUCTIONS.format(
      folder="main_split", suffix="")


class ScanObjectNNObjOnly(_ScanObjectNN, skip_registration=True):
  """OBJ_ONLY: objects without background, 2309 train and 581 test."""

  name = "scanobjectnn_objonly"
  FOLDER = "main_split_nobg"
  DESCRIPTION = "ScanObjectNN OBJ_ONLY (main_split_nobg), FPS-ordered points."
  MANUAL_DOWNLOAD_INSTRUCTIONS = _INSTRUCTIONS.format(
      folder="main_split_nobg", suffix="")


class ScanObjectNNPbT50Rs(_ScanObjectNN, skip_registration=True):
  """PB_T50_RS: the hardest perturbed variant, 11416 train and 2882 test."""

  name = "scanobjectnn_pb_t50_rs"
  SUFFIX = "_augmentedrot_scale75"
  DESCRIPTION = ("ScanObjectNN PB_T50_RS (main_split, augmentedrot_scale75), "
                 "FPS-ordered points.")
  MANUAL_DOWNLOAD_INSTRUCTIONS = _INSTRUCTIONS.format(
      folder="main_split", suffix="_augmentedrot_scale75")
