"""Would FP8 matmuls keep zero-shot's numerics? CPU emulation against float32 and bf16.

  PYTHONPATH=. python bench/check_fp8.py                  # ViT-B/32, 6 views, 32 clouds
  PYTHONPATH=. python bench/check_fp8.py --tiny --batch 4  # a tiny CLIP, seconds

Issue #26 lists FP8 matmuls on Hopper as an opt-in for inference "if its
error against float32 stays within today's bf16 error", and its numerics gate
is that the zero-shot argmax agrees with the float32 CPU path on every test
cloud. This script settles that before any GPU time goes into FP8 speed: it
runs zero-shot, points -> logits, with the same params and inputs as

  float32         the reference: float32 compute, XLA attention, float32 residual;
  bf16 (shipped)  today's default: bf16 matmuls with float32 accumulation and a
                  bf16 residual stream (bench/lib/models' "depth-xla-bf16res";
                  XLA attention, since the Pallas kernels need a GPU);
  fp8 tensor      as bf16, but every nn.Dense of the encoder (q/k/v/out
                  projections, fc1, fc2, the visual projection) as Hopper FP8
                  GEMMs are used: activations and weights quantised to
                  float8_e4m3fn with one scale per tensor (activation amax taken
                  on the fly, over the whole batch; weight amax per tensor), the
                  product accumulated in float32 and rescaled, the bias added in
                  bf16;
  fp8 token       as fp8 tensor with one activation scale per token (row), the
                  better case of the FP8 recipes.

and prints, against float32, the image features' relative error per cloud and
view, their smallest cosine, the logits' largest error and how many clouds'
argmax agree, then the gate for each FP8 setting.

What is and is not quantised: the patch embedding is not an nn.Dense (an
einsum in `PatchEmbedding.from_grey`, K = 1024) and stays bf16, as do
attention's two batched matmuls (QK^T, PV); FP8 there would only add error.
The FP8 GEMM is emulated: e4m3 values are exact in float32 and so are their
products, so a float32 matmul of the dequantised operands is what an FP8 GEMM
with exact float32 accumulation computes. Hopper's FP8 tensor cores
accumulate in reduced-precision float32, so if anything the emulation is
optimistic. The weights reach the quantiser as the bf16 copies nn.Dense
makes; rounding float32 -> bf16 -> e4m3 differs from float32 -> e4m3 only in
rare ties.

The encoder has random weights (as in the other benches). Real CLIP's
activations have outlier channels, a few hundred times the typical value,
which per-tensor FP8 scaling handles worse than these random ones: a fail
here is a fail for real weights, and a pass here would still need checking
with the real checkpoint.
"""

import argparse
import functools
import time
from unittest import mock

from clip2point_jax.core import xla_defaults

xla_defaults.apply()  # Before jax starts, as the other benches do.

import flax.linen as nn  # pylint: disable=g-import-not-at-top
import jax
import jax.numpy as jnp
import numpy as np

from bench.lib import device as device_lib
from bench.lib import inputs as inputs_lib
from bench.lib import models
from clip2point_jax.models import clip as clip_lib
from clip2point_jax.projection import encode as encode_lib
from clip2point_jax.projection import zeroshot
from renderers import cameras

E4M3 = jnp.float8_e4m3fn
E4M3_MAX = float(jnp.finfo(E4M3).max)  # 448
SETTINGS = ("float32", "bf16 (shipped)", "fp8 tensor", "fp8 token")
CAVEAT = ("random weights lack real CLIP's activation outliers, which hurt per-tensor FP8 more: "
          "a fail here is a fail for real weights; a pass would still need checking with them")


def quantize(x, axis=None):
  """(x / scale as float8_e4m3fn, scale float32), amax mapped onto e4m3's largest value.

  Args:
    x: float array.
    axis: None: one scale for the whole tensor; an int: one per slice along
      it (kept as a size-1 axis, so it broadcasts against x).
  """
  x = x.astype(jnp.float32)
  amax = jnp.max(jnp.abs(x), axis=axis, keepdims=axis is not None)
  scale = jnp.where(amax > 0, amax / E4M3_MAX, 1.0)
  # The clip saturates as FP8 recipes do: x / scale can round a hair above 448,
  # and e4m3fn has no infinity, so an unclipped overflow would become NaN.
  return jnp.clip(x / scale, -E4M3_MAX, E4M3_MAX).astype(E4M3), scale


def fp8_dot_general(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None,
                    *, per_token: bool = False):
  """nn.Dense's contraction (lhs [..., K] by rhs [K, F]) as an FP8 GEMM, emulated.

  Both operands are quantised to e4m3 (`quantize`: rhs per tensor, lhs per
  tensor or, `per_token`, per row), multiplied with float32 accumulation,
  rescaled, and returned in lhs's dtype, where nn.Dense then adds its bias.
  """
  del precision, preferred_element_type  # The FP8 GEMM fixes both.
  if dimension_numbers != (((lhs.ndim - 1,), (0,)), ((), ())) or rhs.ndim != 2:
    raise ValueError(f"not nn.Dense's contraction: {dimension_numbers}, rhs {rhs.shape}")
  q_lhs, s_lhs = quantize(lhs, axis=-1 if per_token else None)
  q_rhs, s_rhs = quantize(rhs)
  # e4m3 -> float32 is exact, and so is each product: this matmul is the FP8
  # GEMM with exact float32 accumulation, and runs at CPU float32 speed.
  out = jax.lax.dot_general(q_lhs.astype(jnp.float32), q_rhs.astype(jnp.float32),
                            dimension_numbers, precision=jax.lax.Precision.HIGHEST,
                            preferred_element_type=jnp.float32)
  return (out * (s_lhs * s_rhs)).astype(lhs.dtype)


def _fp8_dense(per_token: bool):
  """A stand-in for `clip._dense`: the same nn.Dense with `fp8_dot_general`."""
  dot = functools.partial(fp8_dot_general, per_token=per_token)

  def dense(features, dtype, name, use_bias=True):
    return nn.Dense(features, use_bias=use_bias, dtype=dtype, param_dtype=jnp.float32,
                    kernel_init=nn.initializers.normal(0.02), name=name, dot_general=dot)
  return dense


def setting_encoder(config, setting: str):
  """(encode(params, depth float[M, S, S]) -> float32[M, D], params) of a setting."""
  if setting == "float32":
    return models.variant_encoder(config, jnp.float32, "depth-xla")
  encode, params = models.variant_encoder(config, jnp.bfloat16, "depth-xla-bf16res")
  if setting == "bf16 (shipped)":
    return encode, params

  def fp8_encode(p, depth):
    # `_dense` is looked up when the modules run, i.e. while this is traced, so
    # the patch covers exactly this setting's trace and the package is unchanged.
    with mock.patch.object(clip_lib, "_dense", _fp8_dense(setting == "fp8 token")):
      return encode(p, depth)
  return fp8_encode, params


def run_setting(config, setting, views, text, points):
  """(features float32[B, V, D], logits float32[B, C], seconds) of one setting, compile included."""
  encode, params = setting_encoder(config, setting)
  render = zeroshot.with_views(views=views)

  @jax.jit
  def features_and_logits(p, t, x):
    features = encode_lib.points_to_features(encode, p, x, render)
    return features, zeroshot.view_similarities(features, t)

  start = time.perf_counter()
  features, logits = jax.device_get(features_and_logits(params, text, points))
  return np.asarray(features), np.asarray(logits), time.perf_counter() - start


def compare(features, logits, ref_features, ref_logits) -> dict:
  """A setting's errors against the reference: per (cloud, view) features, logits, argmax."""
  f, r = features.astype(np.float64), ref_features.astype(np.float64)
  rel = np.linalg.norm(f - r, axis=-1) / np.linalg.norm(r, axis=-1)
  cos = (f * r).sum(-1) / (np.linalg.norm(f, axis=-1) * np.linalg.norm(r, axis=-1))
  return {"rel_mean": float(rel.mean()), "rel_max": float(rel.max()), "cos_min": float(cos.min()),
          "logit_err": float(np.abs(logits - ref_logits).max()),
          "agree": int((logits.argmax(-1) == ref_logits.argmax(-1)).sum()), "clouds": len(logits)}


def gate(row: dict, bf16: dict) -> tuple[bool, str]:
  """Issue #26's gate for an FP8 setting: feature error within bf16's, every argmax kept."""
  within = row["rel_mean"] <= bf16["rel_mean"] and row["rel_max"] <= bf16["rel_max"]
  every = row["agree"] == row["clouds"]
  why = (f"feature error {row['rel_mean'] / bf16['rel_mean']:.1f}x bf16's (mean), "
         f"{row['rel_max'] / bf16['rel_max']:.1f}x (max); argmax {row['agree']}/{row['clouds']}")
  return within and every, why


HEADER = (f"{'setting':<15} {'rel err mean':>12} {'rel err max':>12} {'cos min':>10} "
          f"{'logit err':>10} {'argmax':>7} {'s':>6}")


def _format(name, r, seconds):
  return (f"{name:<15} {r['rel_mean']:>12.3e} {r['rel_max']:>12.3e} {r['cos_min']:>10.6f} "
          f"{r['logit_err']:>10.3e} {r['agree']:>3}/{r['clouds']:<3} {seconds:>6.1f}")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=32, help="clouds")
  parser.add_argument("--points", type=int, default=1024)
  parser.add_argument("--views", type=int, default=len(cameras.VIEWS_ZERO_SHOT))
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--tiny", action="store_true", help="a tiny CLIP instead of ViT-B/32")
  args = parser.parse_args()
  config = models.clip_config(args.tiny)
  views = cameras.VIEWS_ZERO_SHOT[:args.views]
  encoder = "tiny CLIP" if args.tiny else "ViT-B/32 (random weights)"
  print(f"fp8 check (CPU emulation) | {device_lib.describe()} | {encoder} | {args.batch} clouds, "
        f"{args.points} points, {len(views)} views, {models.NUM_CLASSES} classes", flush=True)
  print(f"caveat: {CAVEAT}", flush=True)
  text = jnp.asarray(inputs_lib.unit_rows(models.NUM_CLASSES, config.projection_dim, args.seed))
  points = inputs_lib.clouds(args.batch, args.points, args.seed)
  out = {s: run_setting(config, s, views, text, points) for s in SETTINGS}
  ref_features, ref_logits, _ = out["float32"]
  top2 = np.sort(ref_logits, -1)[:, -2:]
  print(f"float32 logits: top-1 margin min {np.min(top2[:, 1] - top2[:, 0]):.3e}, "
        f"median {np.median(top2[:, 1] - top2[:, 0]):.3e}; errors against float32, "
        "rel err = ||f - f32|| / ||f32|| per cloud and view\n", flush=True)
  print(HEADER)
  rows = {}
  for s in SETTINGS:
    features, logits, seconds = out[s]
    rows[s] = compare(features, logits, ref_features, ref_logits)
    print(_format(s, rows[s], seconds))
  print()
  for s in SETTINGS[2:]:
    passed, why = gate(rows[s], rows["bf16 (shipped)"])
    print(f"gate {s:<11} {'pass' if passed else 'FAIL'}: {why}")
  print(f"(CPU emulation, random weights: {CAVEAT})")


if __name__ == "__main__":
  main()
