"""Agreement of the accelerator with the CPU on the numeric pieces.

  PYTHONPATH=. python bench/check_device.py

Runs the hard and soft projectors, the CLIP image tower (ViT-B/32 shape, random
weights) and the zero-shot logits on the default device and on the CPU, on
fresh random inputs, and prints how far apart they are. A GPU computes float32
matmuls in TF32 unless asked for full precision, so the encoder rows show
both.
"""

import argparse
import contextlib

from clip2point_jax.core import xla_defaults

xla_defaults.apply()  # Before jax starts, as the CLI does.

import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp
import numpy as np

from bench.lib import device as device_lib
from bench.lib import inputs
from bench.lib import models
from clip2point_jax.data import primitives
from clip2point_jax.kernels import dispatch
from clip2point_jax.projection import zeroshot
from renderers import cameras
from renderers import points as projector


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--parts", nargs="+", default=["projector", "encoder"],
                      help="projector and/or encoder (with the zero-shot logits)")
  parts = parser.parse_args().parts
  acc, cpu = jax.devices()[0], jax.devices("cpu")[0]
  rng = np.random.default_rng(0)
  points, _ = primitives.generate(num_per_class=2, num_points=1024, seed=int(rng.integers(1 << 30)))
  points = np.asarray(projector.normalize_points(points))
  rows = []

  def both(fn, *args):
    out_acc = np.asarray(jax.jit(fn)(*jax.device_put(args, acc)))
    out_cpu = np.asarray(jax.jit(fn)(*jax.device_put(args, cpu)))
    return out_acc, out_cpu

  views = jnp.asarray(cameras.VIEWS_PRETRAIN, jnp.float32)
  if "projector" in parts:
    _check_projectors(rows, both, points, views)
  if "encoder" in parts:
    _check_encoder(rows, both, points, rng, cpu)
  print(f"\ndevice check | {device_lib.describe(acc)} | against the cpu")
  for name, value, extra in rows:
    print(f"  {name:<44} {value:>10}  {extra}")


def _check_projectors(rows, both, points, views):
  hard = lambda p, v: projector.render_depth(p, v)
  a, c = both(hard, points, views)
  assert np.isfinite(a).all()
  # A point exactly on a disc's rim may cover a pixel on one device and not
  # on the other (FMA rounding): that pixel's winner, or coverage, differs.
  # Elsewhere the two should agree to float32 rounding.
  diff = np.abs(a - c)
  rim = diff > 1e-4
  rows.append(("hard depth: pixels differing by > 1e-4", f"{int(rim.sum())}",
               f"of {a.size} ({int(((a < 1) != (c < 1)).sum())} change coverage)"))
  rows.append(("hard depth: max |diff| on the other pixels", f"{diff[~rim].max():.2e}",
               f"{np.mean(diff == 0):.4f} bit-equal"))
  soft = lambda p, v: projector.render_depth(p, v, mode="soft")
  a, c = both(soft, points, views)
  rows.append(("soft depth: max |diff|", f"{np.abs(a - c).max():.2e}", f"mean {np.abs(a - c).mean():.2e}"))


def _check_encoder(rows, both, points, rng, cpu):
  config = models.clip_config()
  # Real inputs: depth maps of the clouds, as zero-shot feeds them.
  depth = np.asarray(projector.render_depth(jax.device_put(points[:3], cpu),
                                            cameras.VIEWS_ZERO_SHOT)).reshape(-1, 224, 224)
  reference_model = models.tower(config, jnp.float32, "xla")
  with jax.default_device(cpu):
    params = jax.jit(reference_model.init)(jax.random.key(int(rng.integers(1 << 30))),
                                           np.ones((1, 224, 224, 3), np.float32))["params"]
    with jax.default_matmul_precision("highest"):
      reference = np.asarray(jax.jit(lambda p, d: reference_model.apply({"params": p}, grey=d))(
          jax.device_put(params, cpu), jax.device_put(depth, cpu)))
  acc = jax.devices()[0]
  gpu = acc.platform == "gpu"
  for name, dtype, residual, precision, attention, fused in (
      ("float32, highest", jnp.float32, jnp.float32, "highest", "auto", True),
      ("float32, default (TF32)", jnp.float32, jnp.float32, None, "auto", True),
      ("bfloat16, f32 residual", jnp.bfloat16, jnp.float32, None, "auto", True),
      ("bfloat16, f32 residual, unfused", jnp.bfloat16, jnp.float32, None, "auto", False),
      ("bfloat16, cuDNN attention", jnp.bfloat16, jnp.float32, None, "cudnn" if gpu else "auto",
       True),
      ("bfloat16, bf16 residual", jnp.bfloat16, jnp.bfloat16, None, "auto", True),
      ("bfloat16, bf16 residual, unfused", jnp.bfloat16, jnp.bfloat16, None, "auto", False)):
    passes = {} if fused else dict(layer_norm="xla", activation="xla")
    kernels = dispatch.resolve(attention, dtype, **passes)
    model = models.tower(config, dtype, kernels, residual)
    with jax.default_matmul_precision(precision) if precision else contextlib.nullcontext():
      out = np.asarray(jax.jit(lambda p, d: model.apply({"params": p}, grey=d))(
          jax.device_put(params, acc), jax.device_put(depth, acc)))
    rel = np.linalg.norm(out - reference) / np.linalg.norm(reference)
    rows.append((f"encoder {name}: rel. error vs CPU f32", f"{rel:.2e}",
                 f"attention {kernels.attention}"))

  encode = lambda p, d: reference_model.apply({"params": p}, grey=d)
  text = inputs.unit_rows(models.NUM_CLASSES, config.projection_dim, int(rng.integers(1 << 30)))
  classify = zeroshot.make_classifier(encode, views=cameras.VIEWS_ZERO_SHOT)
  a, c = both(lambda p, t, x: classify(p, t, x), params, text, points)
  rows.append(("zero-shot: argmax agrees", f"{np.mean(a.argmax(-1) == c.argmax(-1)):.3f}",
               f"max |logit diff| {np.abs(a - c).max():.2e}"))
  # The shipped fast path on the device against the CPU's float32 logits.
  fast = models.tower(config, jnp.bfloat16)  # "auto" kernels, a bf16 residual stream
  classify_fast = zeroshot.make_classifier(lambda p, d: fast.apply({"params": p}, grey=d),
                                           views=cameras.VIEWS_ZERO_SHOT)
  fast_logits = np.asarray(classify_fast(jax.device_put(params, acc), jax.device_put(text, acc),
                                       jax.device_put(points, acc)))
  rows.append(("zero-shot bf16, bf16 residual: argmax agrees with CPU f32",
               f"{np.mean(fast_logits.argmax(-1) == c.argmax(-1)):.3f}",
               f"max |logit diff| {np.abs(fast_logits - c).max():.2e}"))


if __name__ == "__main__":
  main()
