"""OpenAI CLIP in flax.linen, laid out exactly like Hugging Face's `CLIPModel`.

Module and parameter names follow the transformers state dict (including its
`pre_layrnorm` spelling), so a checkpoint maps onto the tree by renaming alone:

  vision_model/embeddings/{class_embedding, patch_embedding/kernel,
                           position_embedding/embedding}
  vision_model/pre_layrnorm/{scale, bias}
  vision_model/encoder/layers_{i}/{layer_norm1, layer_norm2}/{scale, bias}
  vision_model/encoder/layers_{i}/self_attn/{q,k,v,out}_proj/{kernel, bias}
  vision_model/encoder/layers_{i}/mlp/{fc1, fc2}/{kernel, bias}
  vision_model/post_layernorm/{scale, bias}
  visual_projection/kernel
  text_model/embeddings/{token_embedding, position_embedding}/embedding
  text_model/encoder/layers_{i}/...           (as for the vision encoder)
  text_model/final_layer_norm/{scale, bias}
  text_projection/kernel
  logit_scale

Parameters are always float32. With `dtype=jnp.bfloat16` the matmuls run in
bfloat16 with float32 accumulation while layer norms, the attention softmax
and the residual stream stay float32 (`residual_dtype=jnp.bfloat16`, the
tasks' default, makes the residual stream bfloat16 too: faster, less exact).

Which kernel runs each pass of a block (attention; its layer norms and
quick-GELU) is one field, `kernels`, a `kernels.dispatch.KernelSettings`;
by default XLA's ops everywhere. `dispatch.resolve` makes one for a compute
dtype on the present backend (config.clip.attention="auto": the Pallas
kernels on GPUs in half precision), and `hf_clip.load_clip` does so. The
modules never look at the backend themselves.

Depth maps have one channel: `encode_depth` folds CLIP's grey-to-RGB copy and
its per-channel mean/std into the patch-embedding weights, so a depth map
goes straight into one matmul, exactly as `encode_image` would see its
three-channel normalised copy.
"""

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from clip2point_jax.errors import UserError
from clip2point_jax.kernels import dispatch
from clip2point_jax.kernels import fused_layer_norm
from clip2point_jax.kernels import quick_gelu

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# transformers.CLIPTextModel keeps this pooling rule for configs written
# before its eos_token_id fix (huggingface/transformers#24773).
LEGACY_EOS_TOKEN_ID = 2


@dataclasses.dataclass(frozen=True)
class CLIPVisionConfig:
  """The vision tower; field names and defaults match HF `CLIPVisionConfig`."""
  image_size: int = 224
  patch_size: int = 32
  num_channels: int = 3
  hidden_size: int = 768
  intermediate_size: int = 3072
  num_hidden_layers: int = 12
  num_attention_heads: int = 12
  hidden_act: str = "quick_gelu"
  layer_norm_eps: float = 1e-5

  @property
  def num_patches(self) -> int:
    return (self.image_size // self.patch_size) ** 2


@dataclasses.dataclass(frozen=True)
class CLIPTextConfig:
  """The text tower; field names and defaults match HF `CLIPTextConfig`."""
  vocab_size: int = 49408
  max_position_embeddings: int = 77
  hidden_size: int = 512
  intermediate_size: int = 2048
  num_hidden_layers: int = 12
  num_attention_heads: int = 8
  hidden_act: str = "quick_gelu"
  layer_norm_eps: float = 1e-5
  bos_token_id: int = 49406
  eos_token_id: int = 49407
  pad_token_id: int = 1


@dataclasses.dataclass(frozen=True)
class CLIPConfig:
  """The whole model: both towers and the shared embedding space."""
  vision: CLIPVisionConfig = CLIPVisionConfig()
  text: CLIPTextConfig = CLIPTextConfig()
  projection_dim: int = 512
  logit_scale_init_value: float = 2.6592


_ACTIVATIONS = {
    "quick_gelu": quick_gelu.quick_gelu,
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
}


def _pick_fields(cls, d: dict[str, Any], where: str):
  """Builds dataclass `cls` from the keys of `d` it knows, ignoring the rest."""
  names = {f.name for f in dataclasses.fields(cls)}
  kwargs = {k: v for k, v in d.items() if k in names and v is not None}
  for key in ("image_size", "patch_size"):
    # HF allows [n, n]; the architecture here (like HF's CLIP) needs squares.
    value = kwargs.get(key)
    if isinstance(value, (list, tuple)):
      if len(value) != 2 or value[0] != value[1]:
        raise UserError(
            f"{where}.{key}={value!r}: only square sizes are supported")
      kwargs[key] = value[0]
  if isinstance(kwargs.get("eos_token_id"), (list, tuple)):
    ids = kwargs["eos_token_id"]
    if len(ids) != 1:
      raise UserError(f"{where}.eos_token_id={ids!r}: expected a single id")
    kwargs["eos_token_id"] = ids[0]
  return cls(**kwargs)


def _check_tower(cfg, where: str):
  if cfg.hidden_size % cfg.num_attention_heads:
    raise UserError(
        f"{where}: hidden_size={cfg.hidden_size} is not divisible by "
        f"num_attention_heads={cfg.num_attention_heads}")
  if cfg.hidden_act not in _ACTIVATIONS:
    raise UserError(
        f"{where}.hidden_act={cfg.hidden_act!r}: expected one of "
        f"{sorted(_ACTIVATIONS)}")


def config_from_hf_dict(hf: dict[str, Any]) -> CLIPConfig:
  """Parses the dict in a Hugging Face CLIP `config.json`.

  Missing fields take HF's defaults. As in transformers, the legacy
  `text_config_dict` / `vision_config_dict` entries override `text_config` /
  `vision_config` where both are present.
  """
  text = dict(hf.get("text_config") or {})
  text.update(hf.get("text_config_dict") or {})
  vision = dict(hf.get("vision_config") or {})
  vision.update(hf.get("vision_config_dict") or {})
  top = {k: hf[k] for k in ("projection_dim", "logit_scale_init_value")
         if hf.get(k) is not None}
  cfg = CLIPConfig(
      vision=_pick_fields(CLIPVisionConfig, vision, "vision_config"),
      text=_pick_fields(CLIPTextConfig, text, "text_config"),
      **top)
  _check_tower(cfg.vision, "vision_config")
  _check_tower(cfg.text, "text_config")
  if cfg.vision.image_size % cfg.vision.patch_size:
    raise UserError(
        f"vision_config: image_size={cfg.vision.image_size} is not a multiple "
        f"of patch_size={cfg.vision.patch_size}")
  return cfg


def normalize_images(images):
  """Applies CLIP's per-channel normalisation.

  Args:
    images: float32[..., 3], RGB in [0, 1].

  Returns:
    float32[..., 3], (images - CLIP_MEAN) / CLIP_STD.
  """
  images = jnp.asarray(images, jnp.float32)
  mean = jnp.asarray(CLIP_MEAN, jnp.float32)
  std = jnp.asarray(CLIP_STD, jnp.float32)
  return (images - mean) / std


def _layer_norm(eps: float, name: str) -> nn.LayerNorm:
  # float32 whatever the compute dtype: bfloat16 statistics are too coarse.
  return nn.LayerNorm(epsilon=eps, dtype=jnp.float32,
                      param_dtype=jnp.float32, name=name)


def _dense(features: int, dtype, name: str | None,
           use_bias: bool = True) -> nn.Dense:
  return nn.Dense(features, use_bias=use_bias, dtype=dtype,
                  param_dtype=jnp.float32,
                  kernel_init=nn.initializers.normal(0.02), name=name)


class CLIPAttention(nn.Module):
  """Multi-head self-attention with HF's separate q/k/v/out projections."""
  num_heads: int
  dtype: Any = jnp.float32
  kernels: dispatch.KernelSettings = dispatch.XLA

  @nn.compact
  def __call__(self, x, causal: bool = False):
    """x: float[B, N, D]; causal: each token attends to itself and earlier ones."""
    width = x.shape[-1]
    head_dim = width // self.num_heads
    split = lambda t: t.reshape(*t.shape[:-1], self.num_heads, head_dim)
    q = split(_dense(width, self.dtype, "q_proj")(x))
    k = split(_dense(width, self.dtype, "k_proj")(x))
    v = split(_dense(width, self.dtype, "v_proj")(x))
    out = dispatch.attention(self.kernels, q, k, v, causal)
    out = out.reshape(*out.shape[:-2], width)
    return _dense(width, self.dtype, "out_proj")(out)


class _FusedLayerNorm(nn.Module):
  """Layer norm as one Pallas kernel, output in the compute dtype; `nn.LayerNorm`'s
  parameters and init."""
  epsilon: float
  dtype: Any

  @nn.compact
  def __call__(self, x):
    width = x.shape[-1]
    scale = self.param("scale", nn.initializers.ones_init(), (width,), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros_init(), (width,), jnp.float32)
    return fused_layer_norm.layer_norm(x, scale, bias, self.epsilon, jnp.dtype(self.dtype))


class CLIPMLP(nn.Module):
  """fc2(act(fc1(x))); quick-GELU as `kernels.activation` says (`dispatch.quick_gelu`)."""
  intermediate_size: int
  hidden_act: str
  dtype: Any = jnp.float32
  kernels: dispatch.KernelSettings = dispatch.XLA

  @nn.compact
  def __call__(self, x):
    h = _dense(self.intermediate_size, self.dtype, "fc1")(x)
    if self.hidden_act == "quick_gelu":
      h = dispatch.quick_gelu(self.kernels, h)
    else:
      h = _ACTIVATIONS[self.hidden_act](h)
    return _dense(x.shape[-1], self.dtype, "fc2")(h)


class CLIPEncoderLayer(nn.Module):
  """Pre-LN transformer block: x + attn(ln1(x)), then x + mlp(ln2(x))."""
  config: Any  # CLIPVisionConfig | CLIPTextConfig
  dtype: Any = jnp.float32
  kernels: dispatch.KernelSettings = dispatch.XLA

  def _norm(self, x, name: str):
    eps = self.config.layer_norm_eps
    if self.kernels.layer_norm == "pallas" and x.ndim == 3:
      return _FusedLayerNorm(eps, self.dtype, name=name)(x)
    return _layer_norm(eps, name)(x)

  @nn.compact
  def __call__(self, x, causal: bool = False):
    cfg = self.config
    h = self._norm(x, "layer_norm1")
    # With a float32 residual stream, adding bfloat16 branch outputs keeps it
    # float32, so rounding does not compound with depth.
    x = x + CLIPAttention(cfg.num_attention_heads, self.dtype, self.kernels,
                          name="self_attn")(h, causal)
    h = self._norm(x, "layer_norm2")
    x = x + CLIPMLP(cfg.intermediate_size, cfg.hidden_act, self.dtype, self.kernels,
                    name="mlp")(h)
    return x


class CLIPEncoder(nn.Module):
  config: Any  # CLIPVisionConfig | CLIPTextConfig
  dtype: Any = jnp.float32
  kernels: dispatch.KernelSettings = dispatch.XLA
  residual_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, causal: bool = False):
    x = x.astype(self.residual_dtype)
    for i in range(self.config.num_hidden_layers):
      x = CLIPEncoderLayer(self.config, self.dtype, self.kernels,
                           name=f"layers_{i}")(x, causal)
    return x


def patchify(images, patch_size: int):
  """float[B, H, W, C] -> float[B, (H/p)(W/p), p*p*C], patches in row-major order.

  Each patch is flattened as (row, column, channel), the order of a conv
  kernel's (kh, kw, c) axes, so conv(images) == patchify(images) @ kernel.
  """
  b, h, w, c = images.shape
  p = patch_size
  x = images.reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, (h // p) * (w // p), p * p * c)


class PatchEmbedding(nn.Module):
  """HF's patch conv (kernel = stride = patch, no bias) as a reshape and a matmul."""
  patch_size: int
  num_channels: int
  hidden_size: int
  dtype: Any = jnp.float32

  def setup(self):
    p = self.patch_size
    self.kernel = self.param("kernel", nn.initializers.normal(0.02),
                             (p, p, self.num_channels, self.hidden_size), jnp.float32)

  def __call__(self, images):
    """images: float[B, H, W, C] -> float32[B, num_patches, D].

    One-channel images (C = 1 where the kernel has 3) are read as their RGB
    copy, by the channel-summed kernel rather than a copy 3 times the size.
    """
    if images.shape[-1] == 1 and self.num_channels != 1:
      return self.from_grey(images[..., 0], jnp.zeros((self.num_channels,), jnp.float32),
                            jnp.ones((self.num_channels,), jnp.float32))
    patches = patchify(images, self.patch_size).astype(self.dtype)
    kernel = self.kernel.reshape(-1, self.hidden_size).astype(self.dtype)
    return jnp.einsum("bnk,kd->bnd", patches, kernel, preferred_element_type=jnp.float32)

  def from_grey(self, grey, mean, std):
    """The tokens of the normalised RGB copy of one-channel images.

    Args:
      grey: float[B, H, W] in [0, 1].
      mean, std: float32[C], the per-channel normalisation of the RGB copy.

    Returns:
      float32[B, num_patches, D], equal to `self((repeat(grey) - mean) / std)`:
      sum_c K_c (g - m_c) / s_c = g (sum_c K_c / s_c) - sum_c K_c m_c / s_c.
    """
    kernel = self.kernel / std[:, None]  # [p, p, C, D]
    bias = -jnp.einsum("ijcd,c->d", kernel, mean)
    grey_kernel = kernel.sum(2).reshape(-1, self.hidden_size).astype(self.dtype)
    patches = patchify(grey[..., None], self.patch_size).astype(self.dtype)
    tokens = jnp.einsum("bnk,kd->bnd", patches, grey_kernel, preferred_element_type=jnp.float32)
    return tokens + bias


class CLIPVisionEmbeddings(nn.Module):
  config: CLIPVisionConfig
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images=None, grey=None):
    """Tokens of `images` float[B, H, W, C] (normalised), or of `grey` float[B, H, W]
    in [0, 1] read as the normalised RGB copy CLIP would see.

    Returns:
      float32[B, 1 + num_patches, D].
    """
    cfg = self.config
    patch = PatchEmbedding(cfg.patch_size, cfg.num_channels, cfg.hidden_size, self.dtype,
                           name="patch_embedding")
    if grey is not None:
      x = patch.from_grey(grey, jnp.asarray(CLIP_MEAN, jnp.float32),
                          jnp.asarray(CLIP_STD, jnp.float32))
    else:
      x = patch(images)
    cls = self.param("class_embedding", nn.initializers.normal(0.02),
                     (cfg.hidden_size,), jnp.float32)
    cls = jnp.broadcast_to(cls, (x.shape[0], 1, cfg.hidden_size))
    x = jnp.concatenate([cls, x], axis=1)
    pos = nn.Embed(cfg.num_patches + 1, cfg.hidden_size, dtype=jnp.float32,
                   param_dtype=jnp.float32,
                   embedding_init=nn.initializers.normal(0.02),
                   name="position_embedding")
    return x + pos(jnp.arange(cfg.num_patches + 1))[None]


class CLIPVisionTransformer(nn.Module):
  """HF `CLIPVisionModel.vision_model`: pooled, un-projected class token."""
  config: CLIPVisionConfig
  dtype: Any = jnp.float32
  kernels: dispatch.KernelSettings = dispatch.XLA
  residual_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images=None, grey=None):
    """images: float32[B, S, S, C] normalised, S = image_size (or [B, S, S, 1],
    read as its RGB copy), or grey: float[B, S, S] in [0, 1] (see
    `CLIPVisionEmbeddings`) -> f32[B, D]."""
    cfg = self.config
    size = (cfg.image_size, cfg.image_size)
    if grey is not None:
      if grey.shape[1:] != size or cfg.num_channels != 3:
        raise ValueError(f"grey images have shape {grey.shape}; this CLIP expects "
                         f"[B, {cfg.image_size}, {cfg.image_size}] and 3 channels")
    elif images.shape[1:] not in (size + (cfg.num_channels,), size + (1,)):
      raise ValueError(
          f"images have shape {images.shape}; this CLIP expects "
          f"[B, {cfg.image_size}, {cfg.image_size}, {cfg.num_channels}] (NHWC), or 1 channel "
          "for its RGB copy")
    x = CLIPVisionEmbeddings(cfg, self.dtype, name="embeddings")(images, grey)
    x = _layer_norm(cfg.layer_norm_eps, "pre_layrnorm")(x)
    x = CLIPEncoder(cfg, self.dtype, self.kernels, self.residual_dtype, name="encoder")(x)
    return _layer_norm(cfg.layer_norm_eps, "post_layernorm")(x[:, 0])


def eos_positions(token_ids, eos_token_id: int):
  """Where transformers 5.x pools each text: int32[T] positions.

  Legacy configs (eos_token_id == 2) take the argmax of the ids, which is the
  end-of-text token in OpenAI's vocabulary; others take the first occurrence
  of `eos_token_id`, since padding may reuse it.
  """
  if eos_token_id == LEGACY_EOS_TOKEN_ID:
    return jnp.argmax(token_ids, axis=-1)
  return jnp.argmax(token_ids == eos_token_id, axis=-1)


class CLIPTextEmbeddings(nn.Module):
  config: CLIPTextConfig

  @nn.compact
  def __call__(self, token_ids):
    """token_ids: int32[T, L] -> float32[T, L, D], token + position."""
    cfg = self.config
    embed = lambda n, name: nn.Embed(
        n, cfg.hidden_size, dtype=jnp.float32, param_dtype=jnp.float32,
        embedding_init=nn.initializers.normal(0.02), name=name)
    x = embed(cfg.vocab_size, "token_embedding")(token_ids)
    positions = jnp.arange(token_ids.shape[-1])
    return x + embed(cfg.max_position_embeddings, "position_embedding")(
        positions)[None]


class CLIPTextTransformer(nn.Module):
  """HF `CLIPTextModel.text_model`: causal encoder pooled at the EOS token."""
  config: CLIPTextConfig
  dtype: Any = jnp.float32
  kernels: dispatch.KernelSettings = dispatch.XLA

  @nn.compact
  def __call__(self, token_ids):
    """token_ids: int32[T, L], L <= max_position_embeddings -> float32[T, D]."""
    cfg = self.config
    length = token_ids.shape[-1]
    if length > cfg.max_position_embeddings:
      raise ValueError(
          f"token_ids have length {length} > max_position_embeddings="
          f"{cfg.max_position_embeddings}")
    x = CLIPTextEmbeddings(cfg, name="embeddings")(token_ids)
    x = CLIPEncoder(cfg, self.dtype, self.kernels, name="encoder")(x, causal=True)
    x = _layer_norm(cfg.layer_norm_eps, "final_layer_norm")(x)
    pos = eos_positions(token_ids, cfg.eos_token_id)
    return jnp.take_along_axis(x, pos[:, None, None], axis=1)[:, 0]


class CLIPVisionEncoder(nn.Module):
  """The image encoder alone: vision tower + `visual_projection`.

  Its params are `{"vision_model": ..., "visual_projection": ...}`, the same
  subtrees as in `CLIP`, so `vision_params(clip_params)` initialises it (for
  example as the trainable depth encoder).
  """
  config: CLIPConfig
  dtype: Any = jnp.float32
  kernels: dispatch.KernelSettings = dispatch.XLA
  residual_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images=None, grey=None):
    """images: float32[B, S, S, 3] normalised, or grey: float[B, S, S] in
    [0, 1] (a depth map) -> float32[B, projection_dim]."""
    x = CLIPVisionTransformer(self.config.vision, self.dtype, self.kernels,
                              self.residual_dtype, name="vision_model")(images, grey)
    x = _dense(self.config.projection_dim, self.dtype, "visual_projection",
               use_bias=False)(x)
    return x.astype(jnp.float32)


def l2_normalize(x: jax.Array, axis: int = -1, eps: float = 1e-12) -> jax.Array:
  """x divided by max(its L2 norm along `axis`, eps), as torch.nn.functional.normalize."""
  return x / jnp.maximum(jnp.linalg.norm(x, axis=axis, keepdims=True), eps)


def vision_tower(model: "CLIP") -> CLIPVisionEncoder:
  """The image tower (+ projection) of `model` alone, computing as `model` does."""
  return CLIPVisionEncoder(model.config, model.dtype, model.kernels, model.residual_dtype)


def vision_params(clip_params):
  """The `CLIPVisionEncoder` params inside a `CLIP` param tree (not copied)."""
  return {k: clip_params[k] for k in ("vision_model", "visual_projection")}


class CLIP(nn.Module):
  """HF `CLIPModel`: both towers, their projections and `logit_scale`.

  Use `model.apply({"params": params}, x, method=model.encode_image)` (or
  `encode_text`); `__call__` runs both and exists mainly for `init`.
  """
  config: CLIPConfig
  dtype: Any = jnp.float32
  kernels: dispatch.KernelSettings = dispatch.XLA
  residual_dtype: Any = jnp.float32

  def setup(self):
    cfg = self.config
    self.vision_model = CLIPVisionTransformer(cfg.vision, self.dtype, self.kernels,
                                              self.residual_dtype)
    self.visual_projection = _dense(cfg.projection_dim, self.dtype, None,
                                    use_bias=False)
    self.text_model = CLIPTextTransformer(cfg.text, self.dtype, self.kernels)
    self.text_projection = _dense(cfg.projection_dim, self.dtype, None,
                                  use_bias=False)
    self.logit_scale = self.param(
        "logit_scale", nn.initializers.constant(cfg.logit_scale_init_value),
        (), jnp.float32)

  def encode_image(self, images):
    """images: float32[B, S, S, 3] normalised (or [B, S, S, 1], read as its RGB
    copy) -> float32[B, projection_dim].

    The features are projected but not L2-normalised.
    """
    x = self.visual_projection(self.vision_model(images))
    return x.astype(jnp.float32)

  def encode_depth(self, depth):
    """depth: float[B, S, S] in [0, 1] -> float32[B, projection_dim].

    The same features as `encode_image` of the depth's normalised RGB copy,
    computed without making that copy.
    """
    x = self.visual_projection(self.vision_model(grey=depth))
    return x.astype(jnp.float32)

  def encode_text(self, token_ids):
    """token_ids: int32[T, L] -> float32[T, projection_dim], not normalised."""
    x = self.text_projection(self.text_model(token_ids))
    return x.astype(jnp.float32)

  def __call__(self, images, token_ids):
    """Returns (image features, text features, logit_scale: float32[])."""
    return (self.encode_image(images), self.encode_text(token_ids),
            self.logit_scale)
