"""Throughput of zero-shot classification, points -> logits, on the present device.

  python bench/bench_zeroshot.py                 # ViT-B/32, 6 views, 224x224
  python bench/bench_zeroshot.py --tiny          # a tiny CLIP, for a CPU check

The encoder has CLIP ViT-B/32's architecture with random weights (the speed
does not depend on the values), unless --clip names a checkpoint. Each
setting is compiled and warmed up, then timed over several repeats on fresh
random clouds; the median is reported.
"""

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from renderers import cameras
from clip2point_jax.data import primitives
from clip2point_jax.models import clip as clip_lib
from clip2point_jax.models import hf_clip, zeroshot

NUM_CLASSES = 40  # ModelNet40


def _encoder(args, dtype):
  """(encode_image, params, config) for the benchmarked image tower."""
  if args.clip:
    loaded = hf_clip.load_clip(args.clip, dtype=dtype)
    return zeroshot.clip_image_encoder(loaded), clip_lib.vision_params(loaded.params), loaded.config
  if args.tiny:
    config = clip_lib.CLIPConfig(
        vision=clip_lib.CLIPVisionConfig(hidden_size=64, intermediate_size=256,
                                         num_hidden_layers=2, num_attention_heads=4),
        text=clip_lib.CLIPTextConfig(), projection_dim=32)
  else:
    config = clip_lib.CLIPConfig()  # HF defaults: ViT-B/32, 224x224, 512-d projection.
  model = clip_lib.CLIPVisionEncoder(config, dtype=dtype)
  image = jnp.zeros((1, 224, 224, 3), jnp.float32)
  params = jax.jit(model.init)(jax.random.key(0), image)["params"]
  encode = lambda p, images: model.apply({"params": p}, images)
  return encode, params, config


def _clouds(batch, num_points, seed):
  per_class = -(-batch // len(primitives.CLASS_NAMES))
  points, _ = primitives.generate(per_class, num_points, seed)
  return jnp.asarray(np.random.default_rng(seed).permutation(points)[:batch])


def bench(args, dtype_name, batch):
  dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[dtype_name]
  encode, params, config = _encoder(args, dtype)
  rng = np.random.default_rng(0)
  text = rng.normal(size=(NUM_CLASSES, config.projection_dim)).astype(np.float32)
  text = jnp.asarray(text / np.linalg.norm(text, axis=-1, keepdims=True))
  classify = zeroshot.make_classifier(encode, views=cameras.VIEWS_ZERO_SHOT[:args.views]
                                      if args.views <= 6 else cameras.VIEWS_PRETRAIN[:args.views])
  inputs = [_clouds(batch, args.points, seed) for seed in range(3)]  # Rotate: no cache effects.
  start = time.perf_counter()
  classify(params, text, inputs[0]).block_until_ready()
  compile_s = time.perf_counter() - start
  for x in inputs:
    classify(params, text, x).block_until_ready()
  times = []
  for i in range(args.repeats):
    start = time.perf_counter()
    classify(params, text, inputs[i % len(inputs)]).block_until_ready()
    times.append(time.perf_counter() - start)
  median = statistics.median(times)
  return {"dtype": dtype_name, "batch": batch, "ms": 1e3 * median, "clouds_per_s": batch / median,
          "compile_s": compile_s, "spread_ms": 1e3 * (max(times) - min(times))}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, nargs="+", default=[32, 128])
  parser.add_argument("--points", type=int, default=1024)
  parser.add_argument("--views", type=int, default=6)
  parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
  parser.add_argument("--repeats", type=int, default=10)
  parser.add_argument("--tiny", action="store_true", help="a tiny CLIP instead of ViT-B/32")
  parser.add_argument("--clip", default="", help="a HF CLIP checkpoint to load instead")
  args = parser.parse_args()
  device = jax.devices()[0]
  rows = [bench(args, d, b) for d in args.dtypes for b in args.batch]
  encoder = args.clip or ("tiny CLIP" if args.tiny else "ViT-B/32 (random weights)")
  print(f"\nzero-shot points->logits | {device.platform} {device.device_kind} | jax {jax.__version__} | "
        f"{encoder} | {args.points} points, {args.views} views, 224x224")
  print(f"{'dtype':>9} {'batch':>6} {'ms/batch':>9} {'clouds/s':>9} {'spread ms':>9} {'compile s':>9}")
  for r in rows:
    print(f"{r['dtype']:>9} {r['batch']:>6} {r['ms']:>9.2f} {r['clouds_per_s']:>9.1f} "
          f"{r['spread_ms']:>9.2f} {r['compile_s']:>9.1f}")


if __name__ == "__main__":
  main()
