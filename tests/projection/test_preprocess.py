"""Point preprocessing shared by the tasks."""

import jax.numpy as jnp
import numpy as np

from clip2point_jax.projection import preprocess


def test_align_modelnet_axes():
  np.testing.assert_allclose(np.asarray(preprocess.align_modelnet(jnp.array([[1.0, 2.0, 3.0]]))),
                             [[-2.0, 3.0, -1.0]])


def test_prepare_points_aligns_then_fits_the_unit_ball():
  rng = np.random.default_rng(0)
  clouds = rng.normal(size=(2, 50, 3)).astype(np.float32) * 4 + 2
  mask = np.ones((2, 50), bool)
  out = np.asarray(preprocess.prepare_points(jnp.asarray(clouds), jnp.asarray(mask), True))
  np.testing.assert_allclose(np.linalg.norm(out, axis=-1).max(-1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(out.mean(1), 0.0, atol=1e-5)
  # y-up: the new y is the old z.
  centred = clouds - clouds.mean(1, keepdims=True)
  np.testing.assert_allclose(out[..., 1] * np.linalg.norm(centred, axis=-1).max(-1)[:, None],
                             centred[..., 2], atol=1e-4)
