"""configs/visualize.py on the built-in shapes: the two figures, and clear errors."""

import numpy as np
import pytest
from PIL import Image

from clip2point_jax.errors import UserError
from clip2point_jax.tasks import visualize
from tests.conftest import task_config


def _config(arg="tiny"):
  return task_config("visualize", arg)


def test_figures_of_primitives(tmp_path, capsys):
  paths = visualize.run(_config(), str(tmp_path))
  for name in ("views", "classes"):
    image = np.asarray(Image.open(paths[name]).convert("RGB"))
    assert image.shape[0] > 100 and image.shape[1] > 300
    assert (image < 250).any(-1).mean() > 0.02  # something is drawn
  assert "10 views" in capsys.readouterr().out
  c = _config()
  c.shape_id = "torus_0000"
  visualize.run(c, str(tmp_path))
  assert "10 views of torus_0000" in capsys.readouterr().out
  c.shape_id = "torus_0001"
  with pytest.raises(UserError, match="torus_0001"):
    visualize.run(c, str(tmp_path))
  c.shape_id, c.shape = "", 99
  with pytest.raises(UserError, match="config.shape=99"):
    visualize.run(c, str(tmp_path))


def test_view_names():
  assert visualize.view_name(0, 0) == "front"
  assert visualize.view_name(90, 0) == "top"
  assert visualize.view_name(0, 90) == "right"
  assert visualize.view_name(0, -90) == "left"
  assert visualize.view_name(180, 0) == "back"
  assert visualize.view_name(225, -45) == "bottom-back-right"
