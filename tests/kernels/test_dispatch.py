"""kernels.dispatch: "auto" resolved in one place, and the settings pick the kernels."""

import jax.numpy as jnp
import numpy as np
import pytest

from clip2point_jax.errors import UserError
from clip2point_jax.kernels import backend
from clip2point_jax.kernels import dispatch
from clip2point_jax.kernels import quick_gelu
from clip2point_jax.kernels import short_attention

PALLAS = dispatch.KernelSettings("pallas", "pallas", "pallas")


def test_auto_is_pallas_on_gpus_in_half_precision_else_xla(monkeypatch):
  for dtype in (jnp.float32, jnp.bfloat16, "bfloat16"):
    # The tests run on the CPU: "auto" is XLA's ops whatever the dtype.
    assert dispatch.resolve("auto", dtype) == dispatch.XLA
  monkeypatch.setattr(backend, "on_gpu", lambda: True)
  for dtype in (jnp.bfloat16, jnp.float16, "bfloat16"):
    assert dispatch.resolve("auto", dtype) == PALLAS
  assert dispatch.resolve("auto", jnp.float32) == dispatch.XLA
  assert dispatch.resolve("auto", jnp.bfloat16, activation="xla") == (
      dispatch.KernelSettings("pallas", layer_norm="pallas"))


def test_named_attention_and_passes():
  assert dispatch.resolve("pallas") == PALLAS  # whatever the dtype or backend
  assert dispatch.resolve("cudnn", jnp.bfloat16) == dispatch.KernelSettings(attention="cudnn")
  assert dispatch.resolve("xla", jnp.bfloat16, layer_norm="pallas") == (
      dispatch.KernelSettings(layer_norm="pallas"))
  assert dispatch.resolve("pallas", layer_norm="xla", activation="xla") == (
      dispatch.KernelSettings(attention="pallas"))
  assert len({dispatch.resolve("pallas"), PALLAS, dispatch.XLA}) == 2  # hashable, by value


def test_unknown_names_are_refused():
  with pytest.raises(UserError, match="attention='flash'"):
    dispatch.resolve("flash")
  with pytest.raises(UserError, match="layer_norm='fast'"):
    dispatch.KernelSettings(layer_norm="fast")
  with pytest.raises(UserError, match="activation='auto'"):
    dispatch.KernelSettings(activation="auto")  # "auto" is for resolve only


def test_settings_pick_the_kernels(monkeypatch):
  called = []
  for module, name in ((short_attention, "xla_attention"), (short_attention, "pallas_attention"),
                       (quick_gelu, "quick_gelu"), (quick_gelu, "quick_gelu_kernel")):
    monkeypatch.setattr(module, name, lambda *args, name=name: called.append(name))
  x = np.zeros((2, 9, 32), np.float32)
  for settings, names in ((dispatch.XLA, ["xla_attention", "quick_gelu"]),
                          (PALLAS, ["pallas_attention", "quick_gelu_kernel"])):
    called.clear()
    dispatch.attention(settings, x, x, x, True)
    dispatch.quick_gelu(settings, x)
    assert called == names, settings
  called.clear()
  dispatch.quick_gelu(PALLAS, x[0])  # the Pallas pass takes a block's [batch, tokens, width] only
  assert called == ["quick_gelu"]


def test_the_pallas_kernels_agree_with_xla():
  rng = np.random.default_rng(0)
  q, k, v = (jnp.asarray(rng.normal(size=(2, 9, 2, 16)), jnp.float32) for _ in range(3))
  x = jnp.asarray(rng.normal(size=(2, 9, 32)), jnp.float32)
  np.testing.assert_allclose(dispatch.attention(PALLAS, q, k, v, True),
                             dispatch.attention(dispatch.XLA, q, k, v, True), atol=2e-5)
  np.testing.assert_allclose(dispatch.quick_gelu(PALLAS, x), dispatch.quick_gelu(dispatch.XLA, x),
                             rtol=1e-5, atol=1e-6)
