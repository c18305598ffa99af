"""Throughput of zero-shot classification, points -> logits, on the present device.

  python bench/bench_zeroshot.py                       # ViT-B/32, 6 views, bf16, the fast path
  python bench/bench_zeroshot.py --tiny --batch 8      # a tiny CLIP, for a CPU check
  python bench/bench_zeroshot.py --variants rgb-xla depth-xla depth-cudnn --batch 512 1024

Variants: `rgb-*` feeds the encoder the 3-channel normalised copy of each
depth map (what CLIP2Point does); `depth-*` folds that copy and the
normalisation into the patch embedding (`encode_depth`, the default path);
`*-xla` / `*-cudnn` / `*-pallas` pick the attention implementation;
`*-bf16res` keeps the residual stream in bfloat16 (the shipped default:
`depth-pallas-bf16res`); `*-pallas-unfused` keeps the Pallas attention but
runs layer norms and quick-GELU as XLA's passes, `*-pallas-nomlp` only
quick-GELU.

The encoder has CLIP ViT-B/32's architecture with random weights (the speed
does not depend on the values). Each setting is compiled and warmed up, then
timed over repeats on rotating random clouds; the median is reported. The
table also gives the ideal: the card's bf16 matmul rate, measured in the same
run on an 8192^3 product, over 8.82 GFLOP per view (ViT-B/32 at 224x224).
GiB is the compiled program's peak device memory (XLA's memory analysis).
ms/batch waits for each call; "b2b" issues the calls back to back and waits
once, as the zero-shot task's loop runs its batches.
"""

import argparse
import statistics
import time

from clip2point_jax.core import xla_defaults

xla_defaults.apply()  # Before jax starts.

import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp
import numpy as np

import bench_common
import timing
from clip2point_jax.models import clip as clip_lib
from clip2point_jax.projection import zeroshot
from renderers import cameras
from renderers import points as projector

NUM_CLASSES = 40  # ModelNet40
VARIANTS = ("rgb-xla", "rgb-cudnn", "depth-xla", "depth-cudnn", "depth-pallas",
            "depth-xla-bf16res", "depth-cudnn-bf16res", "depth-pallas-bf16res",
            "depth-pallas-unfused", "depth-pallas-bf16res-unfused", "depth-pallas-nomlp",
            "depth-pallas-bf16res-nomlp")


def vit_flops_per_image(config: clip_lib.CLIPConfig) -> float:
  """Matmul FLOPs of one image through the vision tower and projection (2 per MAC)."""
  v = config.vision
  tokens = v.num_patches + 1
  d, m = v.hidden_size, v.intermediate_size
  per_layer = 2 * tokens * (4 * d * d + 2 * d * m) + 2 * 2 * tokens * tokens * d
  patch = 2 * v.num_patches * v.patch_size**2 * v.num_channels * d
  return v.num_hidden_layers * per_layer + patch + 2 * d * config.projection_dim


def _config(tiny: bool) -> clip_lib.CLIPConfig:
  if tiny:
    return clip_lib.CLIPConfig(
        vision=clip_lib.CLIPVisionConfig(hidden_size=64, intermediate_size=256,
                                         num_hidden_layers=2, num_attention_heads=4),
        text=clip_lib.CLIPTextConfig(), projection_dim=32)
  return clip_lib.CLIPConfig()  # HF defaults: ViT-B/32, 224x224, 512-d projection.


def _encoder(config, dtype, variant):
  """(encode_depth, params) for a variant of the image tower."""
  feed, attention, *options = variant.split("-")
  model = clip_lib.CLIPVisionEncoder(
      config, dtype=dtype, attention=attention,
      residual_dtype=jnp.bfloat16 if "bf16res" in options else jnp.float32)
  params = bench_common.tower_params(config)
  fused = dict(mlp="unfused" not in options and "nomlp" not in options,
               layer_norm="unfused" not in options)

  def encode(p, depth):
    with clip_lib.fused_kernels(**fused):
      if feed == "depth":
        return model.apply({"params": p}, grey=depth)
      return model.apply({"params": p}, zeroshot.depth_to_clip_images(depth))
  return encode, params


def time_compiled(jitted, fixed, inputs, repeats):
  """Compiles `jitted(*fixed, x)` once, then times the compiled program over
  `repeats` calls rotating through `inputs` (after one warm-up pass): each call
  waited for, and the calls back to back.

  Returns:
    (median seconds waited, compile seconds, spread seconds, the program's GiB,
     seconds per call back to back).
  """
  start = time.perf_counter()
  compiled = jitted.lower(*fixed, inputs[0]).compile()
  compile_s = time.perf_counter() - start
  for x in inputs:
    jax.block_until_ready(compiled(*fixed, x))
  times = []
  for i in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(compiled(*fixed, inputs[i % len(inputs)]))
    times.append(time.perf_counter() - start)
  back_to_back = timing.back_to_back_seconds(
      lambda i: compiled(*fixed, inputs[i % len(inputs)]), jax.block_until_ready, repeats)
  return (statistics.median(times), compile_s, max(times) - min(times),
          bench_common.program_gib(compiled), back_to_back)


def bench(args, config, dtype_name, variant, batch, views):
  dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[dtype_name]
  encode, params = _encoder(config, dtype, variant)
  rng = np.random.default_rng(0)
  text = rng.normal(size=(NUM_CLASSES, config.projection_dim)).astype(np.float32)
  text = jnp.asarray(text / np.linalg.norm(text, axis=-1, keepdims=True))
  classify = zeroshot.make_classifier(encode, views=views)
  inputs = [bench_common.clouds(batch, args.points, seed) for seed in range(3)]  # Rotate: no cache effects.
  seconds, compile_s, spread, gib, back_to_back = time_compiled(classify, (params, text), inputs,
                                                               args.repeats)
  row = {"what": f"points->logits {variant}", "dtype": dtype_name, "batch": batch,
         "ms": 1e3 * seconds, "clouds_per_s": batch / seconds, "compile_s": compile_s,
         "spread_ms": 1e3 * spread, "gib": gib, "b2b_ms": 1e3 * back_to_back,
         "b2b_clouds_per_s": batch / back_to_back}
  print(_format(row), flush=True)
  return row


def bench_projector(args, batch, views):
  render = jax.jit(lambda p: projector.render_depth(projector.normalize_points(p), views))
  inputs = [bench_common.clouds(batch, args.points, seed) for seed in range(3)]
  seconds, compile_s, spread, gib, back_to_back = time_compiled(render, (), inputs, args.repeats)
  row = {"what": "projector alone", "dtype": "float32", "batch": batch, "ms": 1e3 * seconds,
         "clouds_per_s": batch / seconds, "compile_s": compile_s, "spread_ms": 1e3 * spread,
         "gib": gib, "b2b_ms": 1e3 * back_to_back, "b2b_clouds_per_s": batch / back_to_back}
  print(_format(row), flush=True)
  return row


HEADER = (f"{'what':<28} {'dtype':>9} {'batch':>6} {'ms/batch':>9} {'clouds/s':>10} "
          f"{'spread ms':>9} {'b2b ms':>8} {'b2b clouds/s':>12} {'compile s':>9} {'GiB':>6}")


def _format(r):
  return (f"{r['what']:<28} {r['dtype']:>9} {r['batch']:>6} {r['ms']:>9.2f} "
          f"{r['clouds_per_s']:>10.1f} {r['spread_ms']:>9.2f} {r['b2b_ms']:>8.2f} "
          f"{r['b2b_clouds_per_s']:>12.1f} {r['compile_s']:>9.1f} {r['gib']:>6.2f}")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, nargs="+", default=[256, 1024])
  parser.add_argument("--points", type=int, default=1024)
  parser.add_argument("--views", type=int, default=6)
  parser.add_argument("--dtypes", nargs="+", default=["bfloat16"])
  parser.add_argument("--variants", nargs="+", default=["depth-xla"], choices=VARIANTS)
  parser.add_argument("--repeats", type=int, default=10)
  parser.add_argument("--tiny", action="store_true", help="a tiny CLIP instead of ViT-B/32")
  parser.add_argument("--no-projector", action="store_true", help="skip the projector-alone rows")
  args = parser.parse_args()
  device = jax.devices()[0]
  config = _config(args.tiny)
  views = (cameras.VIEWS_ZERO_SHOT[:args.views] if args.views <= 6
           else cameras.VIEWS_PRETRAIN[:args.views])
  encoder = "tiny CLIP" if args.tiny else "ViT-B/32 (random weights)"
  print(f"zero-shot | {device.platform} {device.device_kind} | jax {jax.__version__} | {encoder} | "
        f"{args.points} points, {len(views)} views, 224x224", flush=True)
  peak = bench_common.matmul_tflops(2048 if args.tiny else 8192)
  flops = vit_flops_per_image(config)
  ideal = peak * 1e12 / (flops * len(views))
  print(f"bf16 matmul rate {peak:.1f} TFLOP/s; {flops / 1e9:.3f} GFLOP per view -> "
        f"ideal {ideal:.0f} clouds/s", flush=True)
  print(HEADER, flush=True)
  rows = []
  if not args.no_projector:
    rows += [bench_projector(args, b, views) for b in args.batch]
  rows += [bench(args, config, d, v, b, views)
           for d in args.dtypes for v in args.variants for b in args.batch]
  print(f"\n{HEADER}   % of ideal (waited, b2b)")
  for r in rows:
    print(f"{_format(r)}   {100 * r['clouds_per_s'] / ideal:6.1f} "
          f"{100 * r['b2b_clouds_per_s'] / ideal:6.1f}")


if __name__ == "__main__":
  main()
