"""Fixtures of the task tests that pre-train: a tiny ShapeNet-55 release with renderings, and a CLIP for it.

Module-scoped: each test module (one xdist worker each, --dist loadfile)
prepares its own copy once.
"""

import pytest

from clip2point_jax.tools import make_tiny_clip
from tests.tasks import pretrain_fixtures as pf


@pytest.fixture(name="data_dir", scope="module")
def _data_dir(tmp_path_factory):
  """The TFDS data dir holding `pretrain_fixtures`' tiny ShapeNet-55 release, prepared."""
  return pf.prepare(str(tmp_path_factory.mktemp("shapenet_rendered")))


@pytest.fixture(name="clip_dir", scope="module")
def _clip_dir(tmp_path_factory):
  """A one-layer random CLIP for 64 px images (16 px patches) in Hugging Face format."""
  return make_tiny_clip.write_tiny_clip(str(tmp_path_factory.mktemp("clip") / "clip64"),
                                        vision_config={"image_size": 64, "patch_size": 16,
                                                       "num_hidden_layers": 1},
                                        text_config={"num_hidden_layers": 1})
