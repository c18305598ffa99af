"""Host-side input checks."""

import numpy as np
import pytest

from clip2point_jax.data import checks
from clip2point_jax.errors import UserError


def test_check_points_names_the_source_and_the_bad_point():
  rng = np.random.default_rng(6)
  bad = rng.normal(size=(100, 3)).astype(np.float32)
  bad[7] = np.nan
  bad[9, 2] = np.inf
  with pytest.raises(UserError, match=r"chair_0001\.npy.*point 7.*2 bad points"):
    checks.check_points(bad, "chair_0001.npy")
  with pytest.raises(UserError, match=r"cloud \(1,\), point 7"):
    checks.check_points(np.stack([np.zeros_like(bad), bad]), "batch")
  with pytest.raises(UserError, match="empty"):
    checks.check_points(np.zeros((0, 3)), "x.npy")
  with pytest.raises(UserError, match=r"\[\.\.\., N, 3\]"):
    checks.check_points(np.zeros((10, 2)), "x.npy")
  good = checks.check_points(bad[:5].astype(np.float64), "x.npy")
  assert good.dtype == np.float32 and good.shape == (5, 3)
