"""Which kernel runs each pass of a transformer block: one frozen settings object.

The model (`models/clip.py`) holds a `KernelSettings` (field `kernels`),
calls `attention` and `quick_gelu` here and picks its layer-norm module by
`settings.layer_norm`; it never asks which backend it runs on. `resolve` is
the one place where "auto" (`config.clip.attention`'s default) becomes
implementations for the target platform (`backend.platform()`: jax's
default backend, or the one an export names with `backend.target`): the
Triton Pallas kernels on GPUs in half precision, XLA's ops on TPUs and CPUs.
`hf_clip.load_clip` (and so every task) builds the model with it.

On a TPU target `resolve` refuses the GPU-only choices ("pallas", "cudnn")
with one line, and a Pallas kernel reached some other way refuses to be
traced (`backend.interpret`): nothing Triton reaches a TPU program.

  attention   "xla": einsums with a float32 softmax (`short_attention.xla_attention`);
              "cudnn": cuDNN's flash attention (`jax.nn.dot_product_attention`; GPUs);
              "pallas": one Pallas program per (sequence, head) (`short_attention.py`).
  layer_norm  "xla": flax's `nn.LayerNorm`; "pallas": one Pallas pass at inference,
              flax's op under differentiation (`fused_layer_norm.py`).
  activation  "xla": XLA's quick-GELU; "pallas": one Pallas pass at inference, XLA's
              op under differentiation (`quick_gelu.py`). Other activations are XLA's.

The layer norm's and the activation's Pallas passes apply to a block's
[batch, tokens, width] activations only.
"""

import dataclasses

import jax
import jax.numpy as jnp

from clip2point_jax.errors import UserError
from clip2point_jax.kernels import backend
from clip2point_jax.kernels import quick_gelu as quick_gelu_lib
from clip2point_jax.kernels import short_attention

# config.clip.attention's values; "auto" is resolved by `resolve`.
ATTENTION_IMPLEMENTATIONS = ("auto", "xla", "cudnn", "pallas")
_CHOICES = {"attention": ("xla", "cudnn", "pallas"), "layer_norm": ("xla", "pallas"),
            "activation": ("xla", "pallas")}
_HALF = (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))
# Choices that exist only on GPUs: Triton's kernels and cuDNN's attention.
_GPU_ONLY = {"pallas": "a Triton Pallas kernel, for GPUs", "cudnn": "cuDNN's attention, for NVIDIA GPUs"}


@dataclasses.dataclass(frozen=True)
class KernelSettings:
  """The implementation of each pass (see the module's docstring); XLA's everywhere by default.

  Hashable, so a model holding one stays a valid static jit argument.
  """
  attention: str = "xla"
  layer_norm: str = "xla"
  activation: str = "xla"

  def __post_init__(self):
    for name, choices in _CHOICES.items():
      if getattr(self, name) not in choices:
        raise UserError(f"kernel settings: {name}={getattr(self, name)!r}; use one of {choices}")


XLA = KernelSettings()


def resolve(attention: str = "auto", dtype=jnp.float32, *, layer_norm: str = "auto",
            activation: str = "auto") -> KernelSettings:
  """The settings for a compute dtype on the target platform (`backend.platform()`).

  Args:
    attention: "auto" (the Pallas kernel on GPUs when dtype is bfloat16 or
      float16, else "xla"), "xla", "cudnn" or "pallas".
    dtype: the model's compute dtype (a dtype or its name).
    layer_norm, activation: "auto" (the Pallas pass exactly when attention is
      Pallas's), "xla" or "pallas".

  Raises:
    UserError: an unknown name, or a GPU-only one ("pallas", "cudnn") on a TPU.
  """
  if attention not in ATTENTION_IMPLEMENTATIONS:
    raise UserError(f"attention={attention!r}; use one of {ATTENTION_IMPLEMENTATIONS}")
  if attention == "auto":
    attention = "pallas" if jnp.dtype(dtype) in _HALF and backend.on_gpu() else "xla"
  passes = "pallas" if attention == "pallas" else "xla"
  settings = KernelSettings(attention=attention,
                            layer_norm=passes if layer_norm == "auto" else layer_norm,
                            activation=passes if activation == "auto" else activation)
  if backend.on_tpu():
    _refuse_gpu_only(settings)
  return settings


def _refuse_gpu_only(settings: KernelSettings) -> None:
  """UserError naming the first pass whose choice cannot run on a TPU."""
  for name in _CHOICES:
    choice = getattr(settings, name)
    if choice in _GPU_ONLY:
      field = "clip.attention" if name == "attention" else name
      raise UserError(f"{field}={choice!r} is {_GPU_ONLY[choice]}, and cannot run on a TPU; "
                      "use 'auto' or 'xla' (XLA's ops)")


def attention(settings: KernelSettings, q, k, v, causal: bool = False):
  """Softmax attention by `settings.attention`: q, k, v float[B, T, H, D] -> the same.

  Raises:
    UserError: traced for a TPU with GPU-only settings (made without `resolve`).
  """
  if backend.on_tpu():
    _refuse_gpu_only(settings)
  if settings.attention == "cudnn":
    return jax.nn.dot_product_attention(q, k, v, is_causal=causal, implementation="cudnn")
  if settings.attention == "pallas":
    return short_attention.pallas_attention(q, k, v, causal)
  return short_attention.xla_attention(q, k, v, causal)


def quick_gelu(settings: KernelSettings, x):
  """CLIP's quick-GELU by `settings.activation`: float[...] -> the same."""
  if settings.activation == "pallas" and x.ndim == 3:
    return quick_gelu_lib.quick_gelu_kernel(x)
  return quick_gelu_lib.quick_gelu(x)
