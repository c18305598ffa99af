"""shapenet55 on a mini Point-BERT tree with CLIP2Point-style renderings."""

import os
import sys

import data_fixtures as fx
import numpy as np
import pytest

from clip2point_jax.data import checks
from clip2point_jax.data import registry
from clip2point_jax.data import shapenet_classes
from clip2point_jax.data.builders import shapenet55
from clip2point_jax.errors import UserError

SHAPES = {
    "train": ["02691156-1a04e3eab45ca15dd86060f189eb133",
              "03001627-u6028f63e", "04379243-9f5b8b3e2c1d",
              "03001627-missingcloud"],
    "test": ["04554684-aa1234", "02691156-ff9876", "99999999-unknown"],
}


@pytest.fixture(name="tree")
def _tree(tmp_path):
  rng = np.random.default_rng(0)
  shapes = {s: [i for i in ids if "missing" not in i] for s, ids in
            SHAPES.items()}
  clouds = fx.write_shapenet_tree(str(tmp_path / "manual"), rng, shapes)
  # List a shape whose cloud is missing (skipped, counted).
  with open(tmp_path / "manual" / "ShapeNet55-34" / "ShapeNet-55" /
            "train.txt", "a") as f:
    f.write("03001627-missingcloud.npy\n")
  rendering = tmp_path / "manual" / "rendering"
  pngs = {
      "02691156-1a04e3eab45ca15dd86060f189eb133": fx.write_renderings(
          str(rendering / "02691156_1a04e3eab45ca15dd86060f189eb133"), rng),
      "04554684-aa1234": fx.write_renderings(
          str(rendering / "04554684_aa1234"), rng, size=32),
  }
  # Partial views: stored without images, listed as broken.
  fx.write_renderings(str(rendering / "03001627_u6028f63e"), rng,
                      views=range(6), size=32)
  # A corrupt PNG.
  fx.write_renderings(str(rendering / "02691156_ff9876"), rng, size=32)
  with open(rendering / "02691156_ff9876" / "4.png", "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\nbroken")
  return str(tmp_path / "manual"), clouds, pngs


def test_shapenet55(tmp_path, tree):
  manual, clouds, pngs = tree
  data_dir = str(tmp_path / "tfds")
  registry.prepare("shapenet55", data_dir, manual)
  meta = registry.metadata("shapenet55", data_dir)
  assert meta["skipped"]["train"]["shapes"][0]["id"] == "03001627-missingcloud"
  assert meta["skipped"]["test"]["shapes"][0]["id"] == "99999999-unknown"
  assert meta["renderings"]["dir"] == os.path.join(manual, "rendering")
  assert meta["renderings"]["train"]["with_images"] == 1
  broken = {b["id"] for split in ("train", "test")
            for b in meta["renderings"][split]["broken"]}
  assert broken == {"03001627-u6028f63e", "02691156-ff9876"}
  for split, count in (("train", 3), ("test", 2)):
    source, names = registry.load_split("shapenet55", split, data_dir)
    assert names == shapenet_classes.CLASS_NAMES and len(names) == 55
    assert len(source) == count
    for i in range(count):
      e = source[i]
      shape_id = e["id"].decode()
      assert names[e["label"]] == dict(shapenet_classes.SYNSET_NAMES)[
          shape_id.split("-")[0]]
      order = checks.shape_rng(0, shape_id).permutation(8192)
      np.testing.assert_array_equal(e["points"], clouds[shape_id][order])
      assert bool(e["has_images"]) == (shape_id in pngs)
      if shape_id in pngs:
        assert [bytes(b) for b in e["images"]] == [pngs[shape_id][v]
                                                   for v in range(10)]
        images = shapenet55.decode_renderings(e["images"])
        assert images.shape[0] == 10 and images.dtype == np.uint8
      else:
        assert len(e["images"]) == 0
  big = shapenet55.decode_renderings(
      pngs["02691156-1a04e3eab45ca15dd86060f189eb133"].values())
  assert big.shape == (10, 224, 224, 3)
  assert "tensorflow" not in sys.modules


def test_shapenet55_without_renderings_and_smaller_s(tmp_path, tree):
  manual, clouds, _ = tree
  data_dir = str(tmp_path / "tfds")
  empty = tmp_path / "no_renderings"
  empty.mkdir()
  registry.prepare("shapenet55", data_dir, manual, num_points_stored=1024,
                   seed=7, renderings_dir=str(empty))
  source, _ = registry.load_split("shapenet55", "test", data_dir)
  e = source[0]
  assert e["points"].shape == (1024, 3) and not e["has_images"]
  order = checks.shape_rng(7, e["id"].decode()).permutation(8192)[:1024]
  np.testing.assert_array_equal(e["points"], clouds[e["id"].decode()][order])
  with pytest.raises(UserError, match="renderings_dir .* is not a folder"):
    registry.prepare("shapenet55", str(tmp_path / "x"), manual,
                     renderings_dir=str(tmp_path / "nope"))


def test_shapenet55_layout_errors(tmp_path):
  (tmp_path / "m" / "ShapeNet-55").mkdir(parents=True)
  (tmp_path / "m" / "ShapeNet-55" / "train.txt").write_text("a-b.npy\n")
  with pytest.raises(UserError, match="test.txt is missing"):
    registry.prepare("shapenet55", str(tmp_path / "tfds"), str(tmp_path / "m"))
  (tmp_path / "m" / "ShapeNet-55" / "train.txt").write_text("\n")
  (tmp_path / "m" / "ShapeNet-55" / "test.txt").write_text("x-y.npy\n")
  with pytest.raises(UserError, match="train.txt: lists no shapes"):
    registry.prepare("shapenet55", str(tmp_path / "tfds"), str(tmp_path / "m"))
