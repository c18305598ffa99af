"""kernels.backend: the target platform, and the kernels each target gets or refuses."""

import jax
import jax.numpy as jnp
import pytest

from clip2point_jax.errors import UserError
from clip2point_jax.kernels import backend
from clip2point_jax.kernels import dispatch
from clip2point_jax.kernels import fused_layer_norm
from clip2point_jax.kernels import quick_gelu
from clip2point_jax.kernels import short_attention
from tests.export import exporting

PALLAS = dispatch.KernelSettings("pallas", "pallas", "pallas")
Q = jax.ShapeDtypeStruct((2, 9, 2, 16), jnp.bfloat16)
X = jax.ShapeDtypeStruct((2, 9, 32), jnp.bfloat16)
SCALE = jax.ShapeDtypeStruct((32,), jnp.float32)


def test_the_target_is_the_default_backend_unless_a_block_names_one():
  assert backend.platform() == "cpu" and not backend.on_gpu() and backend.interpret()
  with backend.target("cuda"):
    assert backend.platform() == "gpu" and backend.on_gpu() and not backend.interpret()
    with backend.target("tpu"):
      assert backend.platform() == "tpu" and backend.on_tpu()
    assert backend.platform() == "gpu"
  with pytest.raises(RuntimeError), backend.target("rocm"):
    assert backend.on_gpu()
    raise RuntimeError  # the target is reset on the way out
  assert backend.platform() == "cpu"
  with pytest.raises(UserError, match="'metal'"):
    backend.canonical("metal")


def test_auto_resolves_per_target():
  with backend.target("cuda"):
    assert dispatch.resolve("auto", jnp.bfloat16) == PALLAS
    assert dispatch.resolve("auto", jnp.float32) == dispatch.XLA
  with backend.target("tpu"):
    for dtype in (jnp.bfloat16, jnp.float16, jnp.float32):
      assert dispatch.resolve("auto", dtype) == dispatch.XLA
  assert dispatch.resolve("pallas") == PALLAS  # CPU: named kernels run interpreted


@pytest.mark.parametrize("kwargs, field", [
    (dict(attention="pallas"), "clip.attention='pallas'"),
    (dict(attention="cudnn"), "clip.attention='cudnn'"),
    (dict(attention="xla", layer_norm="pallas"), "layer_norm='pallas'"),
    (dict(attention="xla", activation="pallas"), "activation='pallas'"),
], ids=["attention", "cudnn", "layer_norm", "activation"])
def test_gpu_only_choices_are_refused_on_a_tpu_in_one_line(kwargs, field):
  with backend.target("tpu"), pytest.raises(UserError) as raised:
    dispatch.resolve(dtype=jnp.bfloat16, **kwargs)
  message = str(raised.value)
  assert message.startswith(field) and "TPU" in message and "\n" not in message, message


@pytest.mark.parametrize("trace", [
    lambda: jax.eval_shape(lambda q: dispatch.attention(PALLAS, q, q, q), Q),
    lambda: jax.eval_shape(lambda q: short_attention.pallas_attention(q, q, q), Q),
    lambda: jax.eval_shape(quick_gelu.quick_gelu_kernel, X),
    lambda: jax.eval_shape(lambda x, s: fused_layer_norm.layer_norm(x, s, s, 1e-5, jnp.bfloat16),
                           X, SCALE),
], ids=["dispatch.attention", "pallas_attention", "quick_gelu_kernel", "layer_norm"])
def test_a_triton_kernel_refuses_to_be_traced_for_a_tpu(trace):
  """Settings made without `resolve` (or a kernel called directly) still never reach a TPU."""
  trace()  # Traced for the CPU: interpreted, fine.
  with backend.target("tpu"), pytest.raises(UserError, match="cannot run on a TPU"):
    trace()


@pytest.mark.skipif(not hasattr(jax, "make_user_context"), reason="the target is in jit's keys "
                    "only with jax.make_user_context; older jax: build functions under the target")
def test_one_jitted_function_is_traced_again_for_each_target():
  fn = jax.jit(quick_gelu.quick_gelu_kernel)
  interpreted = fn.trace(X).lower().as_text()
  with backend.target("cuda"):
    compiled = jax.export.export(fn, platforms=("cuda",), disabled_checks=[
        jax.export.DisabledSafetyCheck.custom_call(exporting.TRITON)])(X).mlir_module()
  assert exporting.TRITON not in interpreted and exporting.TRITON in compiled
  with backend.target("tpu"), pytest.raises(UserError, match="cannot run on a TPU"):
    fn.trace(X)
