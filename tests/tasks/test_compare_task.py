"""The compare task: three methods' zero-shot on the same clouds and CLIP, one table and one figure."""

import json
import os

import pytest

from clip2point_jax.errors import UserError
from clip2point_jax.tasks import compare
from tests.conftest import set_fields, task_config


def _tiny(tiny_clip_dir, **dotted):
  """compare:tiny on the shared tiny CLIP; `dotted` fields as `set_fields` takes them."""
  return set_fields(task_config("compare", "dataset=primitives,tiny"),
                    **{"clip.name": tiny_clip_dir, "num_grid_clouds": 2, **dotted})


def test_tiny_run_writes_the_table_and_the_figure(tmp_path, tiny_clip_dir, capsys):
  result = compare.run(_tiny(tiny_clip_dir), str(tmp_path))
  rows = json.loads((tmp_path / "compare.json").read_text())["rows"]
  assert [r["method"] for r in rows] == ["clip2point", "pointclip", "pointclip_v2"] == [
      r["method"] for r in result["rows"]]
  assert [r["render_mode"] for r in rows] == ["hard", "pointclip", "pointclip_v2"]
  assert [r["num_views"] for r in rows] == [6, 6, 10]
  assert [r["clip_normalize"] for r in rows] == [True, False, False]
  for r in rows:
    assert 0.0 <= r["top1_accuracy"] <= 1.0 and r["clouds_per_second"] > 0
    assert len(r["per_class_accuracy"]) == 8
  v2 = rows[2]["recipe"]
  assert v2["published"] is False and v2["tuned_on_test_set"] is False
  markdown = (tmp_path / "compare.md").read_text()
  table = [line for line in markdown.splitlines() if "| hard |" in line or "| pointclip" in line[:14]]
  assert [line.split(" | ")[0] for line in table] == ["| clip2point", "| pointclip", "| pointclip_v2"]
  assert "untuned stand-in" in table[2]
  assert os.path.getsize(tmp_path / "projections.png") > 10_000
  assert "untuned recipe (none published)" in capsys.readouterr().out


@pytest.mark.parametrize("fields,message", [
    ({"methods": ("clip2point", "pointnet")}, "config.methods=('clip2point', 'pointnet'); list each of"),
    ({"render.mode": "pointclip"}, "config.render.mode='pointclip' sets CLIP2Point's row"),
    ({"render.mode": "flat"}, "config.render.mode='flat': use one of hard, soft, pointclip, pointclip_v2"),
    ({"data.name": "modelnet41"}, "config.data.name='modelnet41': no such dataset"),
    ({"untuned_recipe": False}, "pointclip_v2 publishes prompts and view weights for modelnet40"),
])
def test_mistakes_are_one_clear_error(tmp_path, tiny_clip_dir, fields, message):
  with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
    compare.run(_tiny(tiny_clip_dir, **fields), str(tmp_path))
