"""bench/check_fp8.py: its FP8 GEMM emulation is quantise -> dot -> rescale, and its table holds.

The numpy transcription below is written from the recipe (per-tensor or
per-row amax mapped onto e4m3's 448, ml_dtypes' round-to-nearest-even cast,
float32 product, rescale), not from the script's code, so the two agreeing
means the script really quantises.
"""

import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

from bench import check_fp8
from tests.conftest import REPO_ROOT


def _numpy_fp8_matmul(x, w, per_token):
  """x [..., K] @ w [K, F] as an FP8 GEMM: e4m3 operands, float32 product, rescaled."""
  def quantize(a, axis):
    amax = np.abs(a).max(axis=axis, keepdims=axis is not None)
    scale = (amax / np.float32(448)).astype(np.float32)
    q = np.clip(a / scale, -448, 448).astype(ml_dtypes.float8_e4m3fn)
    return q.astype(np.float32), scale
  qx, sx = quantize(x, -1 if per_token else None)
  qw, sw = quantize(w, None)
  return (qx @ qw) * (sx * sw)


@pytest.mark.parametrize("per_token", [False, True])
def test_fp8_dot_general_matches_a_numpy_transcription(per_token):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(3, 7, 96)).astype(np.float32)
  x[1, 2, 5] = 40.0  # An outlier: per-tensor and per-token scales then differ.
  w = (0.02 * rng.normal(size=(96, 24))).astype(np.float32)
  dims = (((2,), (0,)), ((), ()))
  got = np.asarray(jax.jit(lambda a, b: check_fp8.fp8_dot_general(a, b, dims, per_token=per_token))(x, w))
  want = _numpy_fp8_matmul(x, w, per_token)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  exact = x @ w
  error = np.linalg.norm(got - exact) / np.linalg.norm(exact)
  assert 5e-3 < error < 0.1, error  # It quantises (bf16 would be ~3e-3), to e4m3's precision.


def test_fp8_dot_general_keeps_the_compute_dtype_and_refuses_other_contractions():
  x, w = jnp.ones((2, 8), jnp.bfloat16), jnp.ones((8, 4), jnp.bfloat16)
  assert check_fp8.fp8_dot_general(x, w, (((1,), (0,)), ((), ()))).dtype == jnp.bfloat16
  with pytest.raises(ValueError, match="nn.Dense"):
    check_fp8.fp8_dot_general(x, w.T, (((1,), (1,)), ((), ())))


def test_quantize_lands_on_e4m3_values_with_amax_at_448():
  x = jnp.asarray([[0.1, -3.0, 0.37], [2.0, 0.001, -0.5]], jnp.float32)
  q, scale = check_fp8.quantize(x)
  assert q.dtype == jnp.float8_e4m3fn and float(scale) == pytest.approx(3.0 / 448)
  assert float(jnp.abs(q.astype(jnp.float32)).max()) == 448.0
  q_rows, row_scales = check_fp8.quantize(x, axis=-1)
  assert row_scales.shape == (2, 1)
  np.testing.assert_array_equal(np.abs(np.asarray(q_rows, np.float32)).max(-1), [448.0, 448.0])


def test_tiny_table_has_every_setting_and_orders_bf16_below_fp8():
  # As bench/run_device.sh runs the scripts: from the repository root, on PYTHONPATH.
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             PYTHONPATH=os.pathsep.join([REPO_ROOT, os.environ.get("PYTHONPATH", "")]))
  proc = subprocess.run([sys.executable, "bench/check_fp8.py", "--tiny", "--batch", "4", "--points", "256"],
                        env=env, capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
  assert proc.returncode == 0, proc.stdout + proc.stderr
  out = proc.stdout
  assert "random weights lack real CLIP's activation outliers" in out, out
  rows = {}
  for name in check_fp8.SETTINGS:
    match = re.search(rf"^{re.escape(name)}\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\d+)/(\d+)", out, re.M)
    assert match, (name, out)
    rows[name] = [float(v) for v in match.groups()]
  assert rows["float32"][:2] == [0.0, 0.0] and rows["float32"][4] == rows["float32"][5] == 4, out
  bf16 = rows["bf16 (shipped)"]
  assert 0 < bf16[0] <= bf16[1] < 0.05, out
  for name in ("fp8 tensor", "fp8 token"):
    fp8 = rows[name]
    # e4m3 keeps 3 mantissa bits to bf16's 7: several times bf16's error, on any weights.
    assert fp8[0] > 2 * bf16[0] and fp8[1] > bf16[1] and fp8[2] < bf16[2], (name, out)
    assert re.search(rf"^gate {name}\s+(pass|FAIL): feature error", out, re.M), out
