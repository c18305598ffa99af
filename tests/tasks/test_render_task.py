"""configs/render.py on a tiny ShapeNetCore v2 tree: layout, report, resume, shards."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from clip2point_jax.data import shapenet_render
from clip2point_jax.data.builders import shapenet55
from clip2point_jax.errors import UserError
from clip2point_jax.tasks import render
from tests.conftest import task_config
from tests.renderers import mesh_fixtures

GOOD = [("02691156", "1a04e3eab45ca15dd86060f189eb133"), ("03001627", "u6028f63e")]
BROKEN = ("04379243", "brokenmodel")
MISSING = ("02958343", "notdownloaded")


def _config(arg="tiny"):
  return task_config("render", arg)


@pytest.fixture(name="tree")
def _tree(tmp_path):
  rng = np.random.default_rng(0)
  core = tmp_path / "ShapeNetCore.v2"
  for synset, model in GOOD:
    mesh_fixtures.write_shapenet_model(str(core), synset, model, rng)
  bad = core / BROKEN[0] / BROKEN[1] / "models"
  bad.mkdir(parents=True)
  (bad / "model_normalized.obj").write_text("v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n")
  lists = tmp_path / "ShapeNet55-34" / "ShapeNet-55"
  lists.mkdir(parents=True)
  ids = [f"{s}-{m}.npy" for s, m in GOOD + [BROKEN, MISSING]]
  (lists / "train.txt").write_text("\n".join(ids[:3]) + "\n")
  (lists / "test.txt").write_text(ids[3] + "\n" + ids[0] + "\n")
  return str(core), str(tmp_path / "ShapeNet55-34")


def test_renders_layout_report_and_resumes(tmp_path, tree, capsys):
  c = _config()
  c.shapenet_dir, c.lists_dir = tree
  c.out_dir = str(tmp_path / "rendering")
  result = render.run(c, str(tmp_path / "work"))
  assert result["rendered"] == 2 and result["already_done"] == 0
  failed = {f["id"]: f["reason"] for f in result["failed"]}
  assert set(failed) == {"_".join(BROKEN), "_".join(MISSING)}
  assert "degenerate" in failed["_".join(BROKEN)] and "no such mesh file" in failed["_".join(MISSING)]
  with open(tmp_path / "work" / "render_report.json") as f:
    assert json.load(f)["failed"] == result["failed"]
  assert sorted(os.listdir(c.out_dir)) == sorted(f"{s}_{m}" for s, m in GOOD)
  for synset, model in GOOD:
    folder = os.path.join(c.out_dir, f"{synset}_{model}")
    assert sorted(os.listdir(folder)) == [f"{k}.png" for k in range(10)]
    views = shapenet55._read_views(folder)  # The builder reads them as they are.
    images = shapenet55.decode_renderings(views)
    assert images.shape == (10, 32, 32, 3)
    assert (images == 255).all(-1).mean() > 0.2 and (images < 250).any()
  assert "2 models rendered" in capsys.readouterr().out

  # A re-run renders nothing new; a deleted view makes its model render again.
  first = Image.open(os.path.join(c.out_dir, "02691156_1a04e3eab45ca15dd86060f189eb133", "3.png"))
  first = np.asarray(first)
  os.remove(os.path.join(c.out_dir, "03001627_u6028f63e", "7.png"))
  c.loader, c.load_workers = "processes", 1  # The default loader, in a spawned process.
  again = render.run(c, str(tmp_path / "work"))
  assert again["already_done"] == 1 and again["rendered"] == 1 and len(again["failed"]) == 2
  assert os.path.isfile(os.path.join(c.out_dir, "03001627_u6028f63e", "7.png"))
  second = np.asarray(Image.open(
      os.path.join(c.out_dir, "02691156_1a04e3eab45ca15dd86060f189eb133", "3.png")))
  np.testing.assert_array_equal(first, second)
  assert not [n for n in os.listdir(os.path.join(c.out_dir, "03001627_u6028f63e")) if ".tmp" in n]


def test_shards_split_the_models(tree):
  models = shapenet_render.list_models(tree[1], ("train", "test"))
  assert len(models) == 4 and models == sorted(models)
  parts = [models[i::3] for i in range(3)]
  assert sorted(sum(parts, [])) == models
  assert shapenet_render.parse_shard("2/3") == (2, 3)
  for bad in ("3/3", "x", "1/0"):
    with pytest.raises(UserError, match="config.shard"):
      shapenet_render.parse_shard(bad)


def test_config_errors(tmp_path, tree):
  c = _config()
  with pytest.raises(UserError, match="shapenet_dir"):
    render.run(c, str(tmp_path))
  c.shapenet_dir = tree[0]
  c.lists_dir = str(tmp_path / "nowhere")
  with pytest.raises(UserError, match="ShapeNet-55"):
    render.run(c, str(tmp_path))
  c.lists_dir = tree[1]
  c.camera = "fisheye"
  with pytest.raises(UserError, match="config.camera"):
    render.run(c, str(tmp_path))


def test_renderings_feed_shapenet55_and_its_figures(tmp_path, tree):
  """ShapeNetCore -> render -> the shapenet55 builder -> visualize, end to end."""
  from clip2point_jax.data import registry
  from clip2point_jax.tasks import visualize
  from tests.data import data_fixtures

  c = _config()
  c.shapenet_dir, c.lists_dir = tree
  c.out_dir = str(tmp_path / "manual" / "rendering")
  render.run(c, str(tmp_path / "work"))
  shapes = {"train": [f"{s}-{m}" for s, m in GOOD], "test": [f"{s}-{m}" for s, m in GOOD[:1]]}
  data_fixtures.write_shapenet_tree(str(tmp_path / "manual"), np.random.default_rng(1), shapes,
                                    num_points=256)
  data_dir = str(tmp_path / "tfds")
  registry.prepare("shapenet55", data_dir, str(tmp_path / "manual"), num_points_stored=256)
  assert registry.metadata("shapenet55", data_dir)["renderings"]["train"]["with_images"] == 2
  vc = task_config("visualize", "dataset=shapenet55")
  vc.data.data_dir, vc.data.num_points = data_dir, 256
  vc.shape_id = f"{GOOD[1][0]}-{GOOD[1][1]}"
  paths = visualize.run(vc, str(tmp_path / "vis"))
  assert os.path.getsize(paths["views"]) > 10000 and os.path.getsize(paths["classes"]) > 5000


def test_wrong_folders_and_all_failed_runs_raise(tmp_path, tree):
  c = _config()
  c.shapenet_dir, c.lists_dir = tree
  c.lists_dir = str(tmp_path / "no_lists")
  with pytest.raises(UserError, match=r"config.lists_dir=.*no_lists.* is not a folder"):
    render.run(c, str(tmp_path / "work"))
  c.lists_dir = tree[1]
  c.shapenet_dir = str(tmp_path / "no_shapenet")
  with pytest.raises(UserError, match=r"config.shapenet_dir=.*no_shapenet.* is not a folder"):
    render.run(c, str(tmp_path / "work"))
  # A folder that exists but is not ShapeNetCore: every listed model would be missing.
  c.shapenet_dir = str(tmp_path)
  with pytest.raises(UserError, match=r"none of the 4 listed models to render is in config.shapenet_dir"):
    render.run(c, str(tmp_path / "work"))
  # Only the broken and the missing mesh left: the run fails as a whole, after writing its report.
  c.shapenet_dir = tree[0]
  c.out_dir = str(tmp_path / "rendering")
  for synset, model in GOOD:
    folder = tmp_path / "rendering" / f"{synset}_{model}"
    folder.mkdir(parents=True)
    for k in range(10):
      (folder / f"{k}.png").write_bytes(b"")
  with pytest.raises(UserError, match=r"all 2 models to render failed; the reasons are in .*render_report.json"):
    render.run(c, str(tmp_path / "work"))
  with open(tmp_path / "work" / "render_report.json") as f:
    assert len(json.load(f)["failed"]) == 2


def test_edge_rule_is_checked_and_passed_to_the_renderer():
  c = _config()
  assert shapenet_render.render_options(c)["edge_rule"] == "top_left"  # the watertight default
  c.edge_rule = "pytorch3d"
  assert shapenet_render.render_options(c)["edge_rule"] == "pytorch3d"
  c.edge_rule = "strict"
  with pytest.raises(UserError, match="config.edge_rule='strict'; use top_left or pytorch3d"):
    shapenet_render.render_options(c)
