"""Point Transformer (PTv1, Zhao et al., ICCV 2021) in flax.linen, batched.

CLIP2Point's supplementary (Sec. 4) swaps the depth encoder for this network.
It follows the released code: the layer, block and transition of
POSTECH-CVLab/point-transformer (model/pointtransformer/pointtransformer_seg.py
at 10d43ab) and the classification networks of Pointcept
(pointcept/models/point_transformer/point_transformer_{seg,cls}.py at
d74c646). Clouds are float32[B, N, 3] of one static N, padded ones with a
bool[B, N] mask, instead of pointops' concatenated clouds with offsets.

Per stage i (planes 32, 64, 128, 256, 512; strides 1, 4, 4, 4, 4; k = 8, 16,
16, 16, 16 neighbours; `blocks[i]` modules counting the transition, as in
both references' `_make_enc`):

  TransitionDown  stride 1: Linear-BN-ReLU of each point's features.
                  stride 4: FPS keeps N // 4 points (from the first point),
                  each groups its k nearest points of the stage before as
                  [p_j - p_c, x_j], then Linear (no bias)-BN-ReLU and a
                  max-pool over the k.
  Bottleneck      Linear-BN-ReLU, PointTransformerLayer, BN-ReLU, Linear-BN,
                  + identity, ReLU.
  Layer           grouped vector attention over the k nearest neighbours
                  (the point itself first):
                    delta_ij = linear_p(p_j - p_i)      Linear(3,3)-BN-ReLU-Linear(3,C)
                    w_ij = softmax_j linear_w(k_j - q_i + delta_ij)
                           linear_w: BN-ReLU-Linear(C,C/8)-BN-ReLU-Linear(C/8,C/8)
                    y_i[g*C/8 + c] = sum_j w_ij[c] (v_j + delta_ij)[g*C/8 + c]
                  i.e. weight c (of C/8) serves channels c, c + C/8, c + 2C/8, ...
                  (the references' view as (share_planes=8, C/8)).

Fewer points than neighbours (the last stage of a 1024-point cloud holds 4
points and asks for 16), `missing_neighbours`:
  "pointcept" (default; Pointcept's pointops.knn_query_and_group): a missing
    neighbour reads zero features (zero k_j and v_j after their Linear) and a
    zero offset (so delta_ij = linear_p(0)), and still counts in the softmax,
    in the transition's max-pool and in every BatchNorm's statistics.
  "authors" (POSTECH-CVLab's pointops.knnquery): the missing slots hold the
    cloud's first point, with its true offset and features.
Padded clouds follow the same rule with their real points only.

BatchNorm is PyTorch's BatchNorm1d (models/batch_norm.py: momentum 0.1,
eps 1e-5, the running variance towards the unbiased batch variance),
statistics in float32 over every point (and neighbour slot) of the batch.
Padded points are masked out of them; the missing neighbours of real points
are not (see above). Under `jax.jit` with the batch sharded over devices XLA
already reduces over the global batch; `batch_norm_axis_name` is for
`shard_map`/`vmap`, where each instance sees its shard only: it names the
mapped axis whose sums and counts make the global batch's statistics.

Parameters are float32; `dtype=jnp.bfloat16` runs the Linear layers in
bfloat16 while BatchNorm, the softmax and the aggregation stay float32.
Module names mirror Pointcept's state dict (`enc1`..`enc5`, `layers_{j}` for
nn.Sequential's index j, `linear_q`, `linear_p/layers_0`, `bn1`, ...), which
`loading/point_transformer.py` maps.

Heads (`head`): "clip", CLIP2Point's: mean over the (real) points of the last
stage, then `proj`, a bias-free Linear to CLIP's embedding width (like CLIP's
own visual projection); "cls", Pointcept's: the same mean, then
Linear(512,256)-BN-ReLU-Dropout(0.5)-Linear(256,128)-BN-ReLU-Dropout(0.5)-
Linear(128,num_classes); "none": the mean alone.

FPS starts from the first (real) point, so the network is invariant to
permutations of the cloud that keep that point first, not to all of them.
"""

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from clip2point_jax.errors import UserError
from clip2point_jax.models import point_ops
from clip2point_jax.models.batch_norm import BatchNorm
from clip2point_jax.models.gdpa import count_params  # noqa: F401  (re-exported)
from clip2point_jax.models.gdpa import torch_uniform_init

PLANES = (32, 64, 128, 256, 512)
STRIDES = (1, 4, 4, 4, 4)
NEIGHBOURS = (8, 16, 16, 16, 16)
SHARE_PLANES = 8
# Modules per stage, the transition included. "authors": the encoder of
# pointtransformer_seg_repro; the others: Pointcept's PointTransformer-ClsNN.
PRESETS = {
    "authors": (2, 3, 4, 6, 3),
    "cls26": (1, 1, 1, 1, 1),
    "cls38": (1, 2, 2, 2, 2),
    "cls50": (1, 2, 3, 5, 2),
}
MISSING_NEIGHBOURS = ("pointcept", "authors")
HEADS = ("clip", "cls", "none")
# Pointcept's classification head: hidden widths after the encoder.
CLS_HIDDEN = (256, 128)


def _stat_dtype(dtype):
  # float32 statistics and softmax under bfloat16; float64 stays float64 (gradient checks).
  return jnp.promote_types(dtype, jnp.float32)


def _dense(features: int, fan_in: int, dtype, name: str, use_bias: bool = True) -> nn.Dense:
  # torch.nn.Linear's initialisation, so training from scratch starts like the references.
  init = torch_uniform_init(fan_in)
  return nn.Dense(features, use_bias=use_bias, dtype=dtype, param_dtype=jnp.float32,
                  kernel_init=init, bias_init=init, name=name)


def _batch_norm(dtype, axis_name, name: str) -> BatchNorm:
  return BatchNorm(dtype=dtype, axis_name=axis_name, name=name)  # statistics at least float32


def _bn_mask(mask, ndim: int):
  """bool[B, N] -> bool[B, N, 1, ...] of rank `ndim`, or None."""
  if mask is None:
    return None
  return mask.reshape(mask.shape + (1,) * (ndim - mask.ndim))


def _group(values, idx, valid, missing: str):
  """values [B, N, F] at idx int32[B, M, k] -> [B, M, k, F]; "pointcept" zeroes missing slots."""
  grouped = point_ops.gather(values, idx)
  if missing == "pointcept":
    grouped = jnp.where(valid[..., None], grouped, jnp.zeros((), grouped.dtype))
  return grouped


def _offsets(points, centres, idx, valid, missing: str):
  """p_j - p_c: float32[B, M, k, 3] for neighbours idx of centres float32[B, M, 3]."""
  offsets = point_ops.gather(points, idx) - centres[:, :, None, :]
  if missing == "pointcept":
    offsets = jnp.where(valid[..., None], offsets, jnp.zeros((), offsets.dtype))
  return offsets


class PositionEncoding(nn.Module):
  """linear_p: Linear(3,3)-BN-ReLU-Linear(3,C) of offsets float32[B, N, k, 3] -> [B, N, k, C]."""
  features: int
  dtype: Any = jnp.float32
  axis_name: str | None = None

  @nn.compact
  def __call__(self, offsets, bn_mask, train: bool):
    h = _dense(3, 3, self.dtype, "layers_0")(offsets)
    h = _batch_norm(self.dtype, self.axis_name, "layers_1")(h, not train, mask=bn_mask)
    return _dense(self.features, 3, self.dtype, "layers_3")(nn.relu(h))


class WeightEncoding(nn.Module):
  """linear_w: BN-ReLU-Linear(C,C/s)-BN-ReLU-Linear(C/s,C/s), [B, N, k, C] -> [B, N, k, C/s]."""
  features: int
  dtype: Any = jnp.float32
  axis_name: str | None = None

  @nn.compact
  def __call__(self, relation, bn_mask, train: bool):
    width = relation.shape[-1]
    h = _batch_norm(self.dtype, self.axis_name, "layers_0")(relation, not train, mask=bn_mask)
    h = _dense(self.features, width, self.dtype, "layers_2")(nn.relu(h))
    h = _batch_norm(self.dtype, self.axis_name, "layers_3")(h, not train, mask=bn_mask)
    return _dense(self.features, self.features, self.dtype, "layers_5")(nn.relu(h))


class PointTransformerLayer(nn.Module):
  """Grouped vector self-attention over given neighbourhoods (the module docstring's layer).

  Parameters: linear_{q,k,v}/{kernel, bias}, linear_p/layers_{0,3} (Linear),
  linear_p/layers_1 (BN), linear_w/layers_{0,3} (BN), linear_w/layers_{2,5}.
  """
  planes: int
  share_planes: int = SHARE_PLANES
  missing_neighbours: str = "pointcept"
  dtype: Any = jnp.float32
  axis_name: str | None = None

  @nn.compact
  def __call__(self, points, x, idx, valid, mask=None, train: bool = False):
    """Attends over the k neighbours idx of every point.

    Args:
      points: float32[B, N, 3].
      x: float[B, N, C_in].
      idx: int32[B, N, k], neighbours (point_ops.knn of points on points).
      valid: bool[B, N, k], False for missing neighbours.
      mask: bool[B, N] or None; padded points stay out of BatchNorm statistics.
      train: BatchNorm on batch statistics (and updating "batch_stats").

    Returns:
      float32[B, N, planes] (float64 if dtype is float64).
    """
    c, s = self.planes, self.share_planes
    if c % s:
      raise UserError(f"Point Transformer: planes={c} is not divisible by share_planes={s}")
    fan_in = x.shape[-1]
    query = _dense(c, fan_in, self.dtype, "linear_q")(x)
    key = _dense(c, fan_in, self.dtype, "linear_k")(x)
    value = _dense(c, fan_in, self.dtype, "linear_v")(x)
    key = _group(key, idx, valid, self.missing_neighbours)
    value = _group(value, idx, valid, self.missing_neighbours)
    offsets = _offsets(points, points, idx, valid, self.missing_neighbours)
    bn_mask = _bn_mask(mask, 4)
    delta = PositionEncoding(c, self.dtype, self.axis_name, name="linear_p")(
        offsets, bn_mask, train)
    relation = key - query[:, :, None, :] + delta
    weights = WeightEncoding(c // s, self.dtype, self.axis_name, name="linear_w")(
        relation, bn_mask, train)
    weights = jax.nn.softmax(weights.astype(_stat_dtype(self.dtype)), axis=2)
    b, n, k, _ = value.shape
    # Channel g * (C/s) + c uses weight c: the references' view(..., s, C/s).
    grouped = (value + delta).astype(weights.dtype).reshape(b, n, k, s, c // s)
    return jnp.einsum("bnksc,bnkc->bnsc", grouped, weights).reshape(b, n, c)


class Bottleneck(nn.Module):
  """Linear-BN-ReLU, the layer, BN-ReLU, Linear-BN, + identity, ReLU; [B, N, C] -> [B, N, C]."""
  planes: int
  share_planes: int = SHARE_PLANES
  missing_neighbours: str = "pointcept"
  dtype: Any = jnp.float32
  axis_name: str | None = None

  @nn.compact
  def __call__(self, points, x, idx, valid, mask=None, train: bool = False):
    c = self.planes
    bn = lambda name: _batch_norm(self.dtype, self.axis_name, name)
    bn_mask = _bn_mask(mask, 3)
    h = _dense(c, x.shape[-1], self.dtype, "linear1", use_bias=False)(x)
    h = nn.relu(bn("bn1")(h, not train, mask=bn_mask))
    layer = PointTransformerLayer(c, self.share_planes, self.missing_neighbours, self.dtype,
                                  self.axis_name, name="transformer")
    h = layer(points, h, idx, valid, mask, train)
    h = nn.relu(bn("bn2")(h, not train, mask=bn_mask))
    h = _dense(c, c, self.dtype, "linear3", use_bias=False)(h)
    h = bn("bn3")(h, not train, mask=bn_mask)
    return nn.relu(h + x)


class TransitionDown(nn.Module):
  """A stage's first module: per-point Linear-BN-ReLU (stride 1) or FPS + grouping + max-pool."""
  planes: int
  stride: int = 1
  neighbours: int = 16
  missing_neighbours: str = "pointcept"
  dtype: Any = jnp.float32
  axis_name: str | None = None
  knn_block_elements: int = point_ops.DEFAULT_BLOCK_ELEMENTS

  @nn.compact
  def __call__(self, points, x, mask=None, train: bool = False):
    """points float32[B, N, 3], x [B, N, C] -> (points [B, S, 3], x [B, S, planes], mask [B, S]).

    S = N for stride 1, else N // stride; the mask (None if none came in)
    marks floor(R / stride) real samples of a cloud with R real points.
    """
    bn = _batch_norm(self.dtype, self.axis_name, "bn")
    if self.stride == 1:
      h = _dense(self.planes, x.shape[-1], self.dtype, "linear", use_bias=False)(x)
      return points, nn.relu(bn(h, not train, mask=_bn_mask(mask, 3))), mask
    b, n, _ = points.shape
    samples = n // self.stride
    if samples == 0:
      raise UserError(f"Point Transformer: a stage of {n} points cannot be subsampled by "
                      f"{self.stride}; give clouds of at least prod(strides) points")
    picked = point_ops.farthest_point_sampling(points, samples, mask)
    centres = point_ops.gather(points, picked)
    new_mask = point_ops.sampled_mask(mask, self.stride, samples)
    block = point_ops.query_block_size(b, samples, n, self.knn_block_elements)
    idx, valid = point_ops.knn(centres, points, self.neighbours, mask, block)
    offsets = _offsets(points, centres, idx, valid, self.missing_neighbours)
    grouped = _group(x, idx, valid, self.missing_neighbours)
    grouped = jnp.concatenate([offsets.astype(grouped.dtype), grouped], axis=-1)
    h = _dense(self.planes, grouped.shape[-1], self.dtype, "linear", use_bias=False)(grouped)
    h = nn.relu(bn(h, not train, mask=_bn_mask(new_mask, 4)))
    return centres, jnp.max(h, axis=2), new_mask


class Stage(nn.Module):
  """enc{i}: TransitionDown (layers_0), then Bottlenecks layers_1..layers_{blocks-1}."""
  planes: int
  blocks: int
  stride: int
  neighbours: int
  share_planes: int = SHARE_PLANES
  missing_neighbours: str = "pointcept"
  dtype: Any = jnp.float32
  axis_name: str | None = None
  knn_block_elements: int = point_ops.DEFAULT_BLOCK_ELEMENTS

  @nn.compact
  def __call__(self, points, x, mask=None, train: bool = False):
    points, x, mask = TransitionDown(
        self.planes, self.stride, self.neighbours, self.missing_neighbours, self.dtype,
        self.axis_name, self.knn_block_elements, name="layers_0")(points, x, mask, train)
    if self.blocks > 1:
      # One neighbourhood for every block: the points do not move within a stage.
      b, n, _ = points.shape
      block = point_ops.query_block_size(b, n, n, self.knn_block_elements)
      idx, valid = point_ops.knn(points, points, self.neighbours, mask, block)
      for j in range(1, self.blocks):
        x = Bottleneck(self.planes, self.share_planes, self.missing_neighbours, self.dtype,
                       self.axis_name, name=f"layers_{j}")(points, x, idx, valid, mask, train)
    return points, x, mask


class ClassificationHead(nn.Module):
  """Pointcept's `cls`: Linear-BN-ReLU-Dropout, twice, then Linear; [B, C] -> [B, num_classes]."""
  num_classes: int
  dropout: float = 0.5
  dtype: Any = jnp.float32
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x, train: bool = False):
    index = 0  # nn.Sequential's index of each Linear: 0, 4, 8.
    for width in CLS_HIDDEN:
      x = _dense(width, x.shape[-1], self.dtype, f"layers_{index}")(x)
      x = _batch_norm(self.dtype, self.axis_name, f"layers_{index + 1}")(x, not train)
      x = nn.Dropout(self.dropout, deterministic=not train)(nn.relu(x))
      index += 4
    return _dense(self.num_classes, x.shape[-1], self.dtype, f"layers_{index}")(x).astype(
        _stat_dtype(self.dtype))


class PointTransformer(nn.Module):
  """PTv1's encoder (five stages) and a head; see the module docstring.

  Attributes:
    blocks: modules per stage, the transition included (PRESETS).
    in_channels: 3 reads the coordinates alone, 3 + F also F features per
      point (Pointcept's in_channels: 6 for coordinates and normals).
    head: "clip", "cls" or "none" (HEADS).
    embed_dim: the "clip" head's output width (CLIP ViT-B/32: 512).
    num_classes: the "cls" head's output width.
    dropout: the "cls" head's dropout rate.
    missing_neighbours: "pointcept" or "authors" (MISSING_NEIGHBOURS).
    batch_norm_axis_name: the mapped axis BatchNorm sums statistics over
      under shard_map/vmap; None under jit (see the module docstring).
    dtype: the Linear layers' compute dtype (parameters stay float32).
    planes, strides, neighbours, share_planes: the architecture (defaults:
      the references').
    knn_block_elements: the largest kNN distance block, in elements.
  """
  blocks: tuple[int, ...] = PRESETS["authors"]
  in_channels: int = 3
  head: str = "clip"
  embed_dim: int = 512
  num_classes: int = 40
  dropout: float = 0.5
  missing_neighbours: str = "pointcept"
  batch_norm_axis_name: str | None = None
  dtype: Any = jnp.float32
  planes: tuple[int, ...] = PLANES
  strides: tuple[int, ...] = STRIDES
  neighbours: tuple[int, ...] = NEIGHBOURS
  share_planes: int = SHARE_PLANES
  knn_block_elements: int = point_ops.DEFAULT_BLOCK_ELEMENTS

  def check(self):
    """Raises UserError for field values the network cannot be built with."""
    lengths = {len(self.blocks), len(self.planes), len(self.strides), len(self.neighbours)}
    if len(lengths) != 1:
      raise UserError(f"Point Transformer: blocks={self.blocks}, planes={self.planes}, "
                      f"strides={self.strides} and neighbours={self.neighbours} must have one "
                      "length (one entry per stage)")
    if min(self.blocks) < 1:
      raise UserError(f"Point Transformer: blocks={self.blocks}; each stage needs at least 1 "
                      "(its transition)")
    if self.head not in HEADS:
      raise UserError(f"Point Transformer: head={self.head!r}; use one of {', '.join(HEADS)}")
    if self.missing_neighbours not in MISSING_NEIGHBOURS:
      raise UserError(f"Point Transformer: missing_neighbours={self.missing_neighbours!r}; use "
                      f"one of {', '.join(MISSING_NEIGHBOURS)}")
    if self.in_channels < 3:
      raise UserError(f"Point Transformer: in_channels={self.in_channels} must count the 3 "
                      "coordinates")

  def pooled_width(self) -> int:
    return self.planes[-1]

  @nn.compact
  def __call__(self, points, features=None, mask=None, train: bool = False):
    """The head's output for a batch of clouds.

    Args:
      points: float32[B, N, 3]; N at least prod(strides).
      features: float32[B, N, in_channels - 3], or None when in_channels is 3.
      mask: bool[B, N], True for real points, or None (all real).
      train: batch statistics for BatchNorm (mutable "batch_stats") and
        dropout (rng "dropout", "cls" head only).

    Returns:
      "clip": float32[B, embed_dim], not normalised; "cls": float32[B,
      num_classes] logits; "none": float32[B, planes[-1]].
    """
    self.check()
    points = jnp.asarray(points)
    extra = self.in_channels - 3
    if extra:
      if features is None or features.shape[-1] != extra:
        got = None if features is None else features.shape
        raise UserError(f"Point Transformer: in_channels={self.in_channels} needs features "
                        f"[B, N, {extra}] beside the coordinates, got {got}")
      x = jnp.concatenate([points, features.astype(points.dtype)], axis=-1)
    else:
      if features is not None:
        raise UserError("Point Transformer: in_channels=3 reads coordinates only; set in_channels="
                        f"{3 + features.shape[-1]} to read the {features.shape[-1]} features too")
      x = points
    p = points
    for i, (planes, blocks, stride, k) in enumerate(
        zip(self.planes, self.blocks, self.strides, self.neighbours)):
      p, x, mask = Stage(planes, blocks, stride, k, self.share_planes, self.missing_neighbours,
                         self.dtype, self.batch_norm_axis_name, self.knn_block_elements,
                         name=f"enc{i + 1}")(p, x, mask, train)
    total = jnp.sum(x if mask is None else jnp.where(mask[..., None], x, 0), axis=1)
    pooled = total / point_ops.count_real(mask, x.shape[1]).astype(total.dtype)
    if self.head == "clip":
      return _dense(self.embed_dim, pooled.shape[-1], self.dtype, "proj", use_bias=False)(
          pooled).astype(_stat_dtype(self.dtype))
    if self.head == "cls":
      return ClassificationHead(self.num_classes, self.dropout, self.dtype,
                                self.batch_norm_axis_name, name="cls")(pooled, train)
    return pooled


def preset(name: str, **fields) -> PointTransformer:
  """PointTransformer with PRESETS[name] blocks ("authors", "cls26", "cls38", "cls50")."""
  if name not in PRESETS:
    raise UserError(f"Point Transformer preset {name!r}; use one of {', '.join(PRESETS)}")
  return PointTransformer(blocks=PRESETS[name], **fields)


def min_points(model: PointTransformer) -> int:
  """The fewest points per cloud every stage can subsample (one point in the last)."""
  return math.prod(model.strides)


def init_variables(model: PointTransformer, key, num_points: int | None = None,
                   batch: int = 2) -> dict[str, Any]:
  """{"params": ..., "batch_stats": ...}, parameters drawn from `key`.

  Shapes do not depend on the number of points; the dummy clouds have
  `num_points` (default: min_points(model)) random points.
  """
  num_points = num_points or min_points(model)
  points_key, params_key = jax.random.split(key)
  points = jax.random.normal(points_key, (batch, num_points, 3), jnp.float32)
  features = None
  if model.in_channels > 3:
    features = jnp.ones((batch, num_points, model.in_channels - 3), jnp.float32)
  variables = dict(model.init({"params": params_key}, points, features, train=False))
  variables.setdefault("batch_stats", {})
  return variables


def dense_macs(model: PointTransformer, num_points: int) -> int:
  """Multiply-accumulates per cloud of `num_points` real points, analytically.

  Counts every Linear (bias adds not counted) and the attention's weighted
  sum (k MACs per channel and point); not BatchNorm, ReLU, softmax,
  distances, kNN or FPS. The convention of thop/fvcore for Linear layers.
  """
  model.check()
  n, c_in, total = num_points, model.in_channels, 0
  for planes, blocks, stride, k in zip(model.planes, model.blocks, model.strides,
                                       model.neighbours):
    if stride == 1:
      total += n * c_in * planes
    else:
      n //= stride
      total += n * k * (3 + c_in) * planes
    c, w = planes, planes // model.share_planes
    per_block = (n * c * c          # linear1
                 + 3 * n * c * c    # linear_q, linear_k, linear_v
                 + n * k * (3 * 3 + 3 * c)  # linear_p
                 + n * k * (c * w + w * w)  # linear_w
                 + n * k * c        # weighted sum over the neighbours
                 + n * c * c)       # linear3
    total += (blocks - 1) * per_block
    c_in = planes
  if model.head == "clip":
    total += c_in * model.embed_dim
  elif model.head == "cls":
    widths = (c_in,) + CLS_HIDDEN + (model.num_classes,)
    total += sum(a * b for a, b in zip(widths[:-1], widths[1:]))
  return total

