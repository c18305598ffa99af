"""The image tower the benchmarks time: its configs, its params, and its compute settings by name.

A variant name reads "<feed>-<attention>[-bf16res][-unfused|-nomlp]":
`rgb-*` feeds the encoder the 3-channel normalised copy of each depth map
(what CLIP2Point does), `depth-*` folds that copy and the normalisation into
the patch embedding (`encode_depth`, the default path); the attention is
`xla`, `cudnn` or `pallas` (`kernels.dispatch`); `bf16res` keeps the residual
stream in bfloat16 (the shipped default: `depth-pallas-bf16res`);
`*-pallas-unfused` keeps the Pallas attention but runs layer norms and
quick-GELU as XLA's passes, `*-pallas-nomlp` only quick-GELU.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp

from bench.lib import inputs
from clip2point_jax.kernels import dispatch
from clip2point_jax.models import clip as clip_lib
from clip2point_jax.projection import zeroshot

NUM_CLASSES = 40  # ModelNet40's: the zero-shot classifier's text features
VARIANTS = ("rgb-xla", "rgb-cudnn", "depth-xla", "depth-cudnn", "depth-pallas",
            "depth-xla-bf16res", "depth-cudnn-bf16res", "depth-pallas-bf16res",
            "depth-pallas-unfused", "depth-pallas-bf16res-unfused", "depth-pallas-nomlp",
            "depth-pallas-bf16res-nomlp")


def clip_config(tiny: bool = False, image_size: int = 224, patch_size: int = 32) -> clip_lib.CLIPConfig:
  """ViT-B/32 (HF's defaults: 224x224, 512-d projection), or a tiny CLIP for a CPU check."""
  if not tiny:
    return clip_lib.CLIPConfig()
  vision = clip_lib.CLIPVisionConfig(image_size=image_size, patch_size=patch_size, hidden_size=64,
                                     intermediate_size=256, num_hidden_layers=2,
                                     num_attention_heads=4)
  return clip_lib.CLIPConfig(vision=vision, projection_dim=32)


@functools.lru_cache
def tower_params(config: clip_lib.CLIPConfig):
  """Random float32 params of `config`'s image tower, made once per process and
  shared by every setting: they do not depend on the compute dtype, the
  kernels or the residual dtype, and initialising ViT-B/32 compiles for
  longer than one setting takes to run."""
  tower = clip_lib.CLIPVisionEncoder(config)
  image = jnp.zeros((1, config.vision.image_size, config.vision.image_size, 3))
  return jax.jit(tower.init)(jax.random.key(0), image)["params"]


@dataclasses.dataclass(frozen=True)
class Variant:
  """A parsed variant name (see the module's docstring)."""
  feed: str  # "depth" or "rgb"
  kernels: dispatch.KernelSettings
  bf16_residual: bool


def parse_variant(name: str, dtype) -> Variant:
  """The feed, kernel settings and residual choice a variant name says, for a compute dtype."""
  feed, attention, *options = name.split("-")
  passes = {}
  if "unfused" in options:
    passes = dict(layer_norm="xla", activation="xla")
  elif "nomlp" in options:
    passes = dict(activation="xla")
  return Variant(feed, dispatch.resolve(attention, dtype, **passes), "bf16res" in options)


def tower(config, dtype, kernels: dispatch.KernelSettings | str = "auto",
          residual_dtype=None) -> clip_lib.CLIPVisionEncoder:
  """The image tower computing in `dtype`; kernels by settings or an attention
  name (`dispatch.resolve`); the residual stream in `residual_dtype` (default: the compute dtype)."""
  if isinstance(kernels, str):
    kernels = dispatch.resolve(kernels, dtype)
  return clip_lib.CLIPVisionEncoder(config, dtype=dtype, kernels=kernels,
                                    residual_dtype=residual_dtype or dtype)


def variant_encoder(config, dtype, name: str):
  """(encode(params, depth float[B, S, S]) -> features, params) of a variant of the image tower."""
  variant = parse_variant(name, dtype)
  model = tower(config, dtype, variant.kernels,
                jnp.bfloat16 if variant.bf16_residual else jnp.float32)

  def encode(p, depth):
    if variant.feed == "depth":
      return model.apply({"params": p}, grey=depth)
    return model.apply({"params": p}, zeroshot.depth_to_clip_images(depth))
  return encode, tower_params(config)


def zeroshot_classifier(config, dtype, variant: str, views):
  """(classify(params, text, points) -> logits, jitted; its params; unit text features of
  `NUM_CLASSES` classes): zero-shot with a variant of the image tower."""
  encode, params = variant_encoder(config, dtype, variant)
  text = jnp.asarray(inputs.unit_rows(NUM_CLASSES, config.projection_dim))
  return zeroshot.make_classifier(encode, views=views), params, text
