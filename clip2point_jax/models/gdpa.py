"""The Gated Dual-Path Adapter (GDPA): CLIP2Point's downstream learner.

Two frozen encoders see the same V rendered views of a cloud: path P, the
CLIP2Point pre-trained depth encoder, and path C, CLIP's own image tower.
Each path's per-view features go through its own `ViewAdapter` (the released
code's `SimplifiedAdapter`):

    x * view_weights (V scalars, init 0.5) -> BatchNorm over the D channels,
    shared by the views -> dropout -> flatten to V*D -> Linear(V*D -> D)
    -> BatchNorm -> ReLU -> dropout -> Linear(D -> D)

and a gate fuses the two adapted features a_P, a_C:

    g = softmax(Linear(2D -> 2)([a_P; a_C])),  f = g_P a_P + g_C a_C

(`fusion="mean"` is the released code's fixed f = (a_P + a_C) / 2). f is
L2-normalised and the logits are f . t^T against unit text features t of the
class prompts, with no logit scale unless one is configured.

With V = 10 and D = 512 the trainable parameters number 5,775,382 with the
gate and 5,773,332 without it (supplementary Table 1: 5.78M).

Layers follow PyTorch's semantics, since the reference results come from it:
`BatchNorm` is `nn.BatchNorm1d` (models/batch_norm.py: momentum 0.1,
eps 1e-5, running variance updated with the unbiased batch variance) and
`TorchDense` initialises like `nn.Linear` (uniform in +-1/sqrt(fan_in), bias
too). BatchNorm statistics live in the flax collection "batch_stats"; dropout
draws from the "dropout" rng stream.

`from_config` builds the model `config.model.kind` names: this GDPA or
CLIP's linear probe (models/linear_probe.py), which takes the same arguments.

The 3D path (`point_path=True`; the few-shot config's `depth_encoder` names a
Point Transformer's pre-training workdir, supplementary Sec. 4): path P is
the frozen 3D encoder's one feature per cloud, float32[B, 1, D], instead of V
views' features; path C stays CLIP's V views. Path P's adapter then has no
view weights (one scalar before a BatchNorm would be normalised away) and
its first Linear reads D inputs instead of V*D:

    x -> BatchNorm -> dropout -> Linear(D -> D) -> BatchNorm -> ReLU -> dropout -> Linear(D -> D)

The gate is unchanged: softmax(Linear(2D -> 2)([a_P; a_C])) mixes the adapted
3D feature with the adapted CLIP views. With V = 10 and D = 512 this GDPA has
3,416,076 trainable parameters (path P's adapter has 9 x 512 x 512 fewer
weights and no view weights).
"""

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from clip2point_jax.errors import UserError
from clip2point_jax.models.batch_norm import BatchNorm
from clip2point_jax.models.clip import l2_normalize

FUSIONS = ("gate", "mean")
# config.model.kind: the few-shot model. "linear_probe" is models/linear_probe.py.
KINDS = ("gdpa", "linear_probe")


def torch_uniform_init(fan_in: int):
  """`nn.Linear`'s default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), weight and bias alike."""
  bound = 1.0 / math.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


class TorchDense(nn.Module):
  """A dense layer initialised like PyTorch's `nn.Linear`; params `kernel` [in, out], `bias`."""
  features: int

  @nn.compact
  def __call__(self, x):
    init = torch_uniform_init(x.shape[-1])
    kernel = self.param("kernel", init, (x.shape[-1], self.features), jnp.float32)
    bias = self.param("bias", init, (self.features,), jnp.float32)
    return x @ kernel + bias


class ViewAdapter(nn.Module):
  """One path's adapter: V per-view D-d features -> one D-d feature.

  `view_weights=False` (the 3D path's adapter, one feature) leaves out the
  learned per-view weights.
  """
  num_views: int
  dropout: float = 0.075
  view_init: float = 0.5
  view_weights: bool = True

  @nn.compact
  def __call__(self, features, train: bool):
    """features: float32[B, V, D], not normalised -> float32[B, D]."""
    b, v, d = features.shape
    if v != self.num_views:
      raise ValueError(f"the adapter was built for {self.num_views} views, got {v}")
    x = features.astype(jnp.float32)
    if self.view_weights:
      weights = self.param("view_weights", nn.initializers.constant(self.view_init), (v,), jnp.float32)
      x = x * weights[:, None]
    x = BatchNorm(name="norm_views")(x, not train)  # shared by the views: stats over B*V
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    x = TorchDense(d, name="fc1")(x.reshape(b, v * d))
    x = BatchNorm(name="norm_hidden")(x, not train)
    x = nn.Dropout(self.dropout, deterministic=not train)(nn.relu(x))
    return TorchDense(d, name="fc2")(x)


class GDPA(nn.Module):
  """Both adapters, the fusion and the logits against fixed text features.

  Parameters: `adapter_depth/...` (path P), `adapter_clip/...` (path C),
  `gate/{kernel, bias}` (fusion "gate" only) and `logit_scale` (only
  when learned; stored as its log, like CLIP's). With `point_path` path P
  reads one 3D feature per cloud (the module docstring).
  """
  num_views: int
  dropout: float = 0.075
  view_init: float = 0.5
  fusion: str = "gate"
  logit_scale: float = 1.0  # 1.0: none, as released.
  learn_logit_scale: bool = False
  point_path: bool = False

  def setup(self):
    if self.fusion not in FUSIONS:
      raise UserError(f"config.model.fusion={self.fusion!r}; use one of {', '.join(FUSIONS)}")
    if not self.logit_scale > 0:
      raise UserError(f"config.model.logit_scale={self.logit_scale!r} must be > 0 (1.0 means none)")
    self.adapter_depth = ViewAdapter(depth_views(self), self.dropout, self.view_init,
                                     view_weights=not self.point_path, name="adapter_depth")
    self.adapter_clip = ViewAdapter(self.num_views, self.dropout, self.view_init, name="adapter_clip")
    if self.fusion == "gate":
      self.gate = TorchDense(2)
    if self.learn_logit_scale:
      self.log_logit_scale = self.param(
          "logit_scale", nn.initializers.constant(math.log(self.logit_scale)), (), jnp.float32)

  def embed(self, depth_features, clip_features, train: bool = False):
    """float32[B, V, D] per path (path P [B, 1, D] with point_path) -> float32[B, D], unit rows."""
    a_depth = self.adapter_depth(depth_features, train)
    a_clip = self.adapter_clip(clip_features, train)
    if self.fusion == "gate":
      g = jax.nn.softmax(self.gate(jnp.concatenate([a_depth, a_clip], axis=-1)), axis=-1)
      fused = g[:, :1] * a_depth + g[:, 1:] * a_clip
    else:
      fused = 0.5 * (a_depth + a_clip)
    return l2_normalize(fused)

  def scale(self):
    return jnp.exp(self.log_logit_scale) if self.learn_logit_scale else jnp.float32(self.logit_scale)

  def __call__(self, depth_features, clip_features, text_features, train: bool = False):
    """Logits float32[B, C] for unit text features float32[C, D]."""
    fused = self.embed(depth_features, clip_features, train)
    return self.scale() * fused @ text_features.T


def depth_views(model: nn.Module) -> int:
  """Features per cloud on path P: 1 for the 3D path, else the V views."""
  return 1 if getattr(model, "point_path", False) else model.num_views


def kind_of(model_config) -> str:
  """"gdpa" or "linear_probe"; a config without `kind` (older runs) is a GDPA."""
  return model_config.get("kind", "gdpa")


def from_config(model_config, num_views: int, depth_encoder: str = "",
                point_path: bool = False) -> nn.Module:
  """The few-shot model a config's `model` block describes (`model.kind`).

  Configs and gdpa.json files written before `kind` existed hold a GDPA.
  `depth_encoder` (the config's; empty: path P is CLIP's own tower) decides
  which paths a linear probe reads; the GDPA always reads both. `point_path`:
  `depth_encoder` is a 3D encoder, one feature per cloud on path P.
  """
  kind = kind_of(model_config)
  if kind == "linear_probe":
    # Here, not at the top: linear_probe imports this module.
    from clip2point_jax.models import linear_probe  # pylint: disable=g-import-not-at-top
    return linear_probe.LinearProbe(num_views=num_views,
                                    paths=("depth", "clip") if depth_encoder else ("clip",),
                                    point_path=point_path)
  if kind != "gdpa":
    raise UserError(f"config.model.kind={kind!r}; use one of {', '.join(KINDS)}")
  return GDPA(num_views=num_views, dropout=float(model_config.dropout),
              view_init=float(model_config.view_init), fusion=model_config.fusion,
              logit_scale=float(model_config.logit_scale),
              learn_logit_scale=bool(model_config.learn_logit_scale), point_path=point_path)


def init_variables(model: nn.Module, key, num_views: int, features: int,
                   num_classes: int = 2) -> dict[str, Any]:
  """{"params": ..., "batch_stats": ...} for features of width `features`.

  `num_classes` sizes a linear probe's output layer (the GDPA's parameters do
  not depend on it). A model without BatchNorm gets an empty "batch_stats",
  so training and checkpoints keep one layout.
  """
  dummy = jnp.zeros((2, num_views, features), jnp.float32)
  depth = jnp.zeros((2, depth_views(model), features), jnp.float32)
  text = jnp.zeros((num_classes, features), jnp.float32)
  variables = dict(model.init({"params": key}, depth, dummy, text, train=False))
  variables.setdefault("batch_stats", {})
  return variables


def count_params(tree) -> int:
  """The number of scalars in a parameter pytree (arrays or ShapeDtypeStructs)."""
  return int(sum(math.prod(x.shape) for x in jax.tree.leaves(tree)))
