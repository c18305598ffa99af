"""Throughput of zero-shot classification, points -> logits, on the present device.

  PYTHONPATH=. python bench/bench_zeroshot.py                       # ViT-B/32, 6 views, bf16, the fast path
  PYTHONPATH=. python bench/bench_zeroshot.py --tiny --batch 8      # a tiny CLIP, for a CPU check
  PYTHONPATH=. python bench/bench_zeroshot.py --variants rgb-xla depth-xla depth-cudnn --batch 512 1024

Variants (`bench/lib/models.py`): `rgb-*` feeds the encoder the 3-channel
normalised copy of each depth map, `depth-*` the depth maps themselves;
`*-xla` / `*-cudnn` / `*-pallas` pick the attention; `*-bf16res` keeps the
residual stream in bfloat16 (the shipped default: `depth-pallas-bf16res`);
`*-unfused` / `*-nomlp` turn the Pallas layer-norm and quick-GELU passes off.

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

from clip2point_jax.core import xla_defaults

xla_defaults.apply()  # Before jax starts.

import jax  # pylint: disable=g-import-not-at-top

from bench.lib import device as device_lib
from bench.lib import flops
from bench.lib import inputs as inputs_lib
from bench.lib import models
from renderers import cameras
from renderers import points as projector

def _row(args, what, dtype_name, batch, jitted, fixed):
  """Times `jitted(*fixed, clouds)` on rotating batches of clouds (no cache effects) and prints its row."""
  clouds = [inputs_lib.clouds(batch, args.points, seed) for seed in range(3)]
  seconds, compile_s, spread, gib, back_to_back = device_lib.time_compiled(jitted, fixed, clouds,
                                                                           args.repeats)
  row = {"what": what, "dtype": dtype_name, "batch": batch, "ms": 1e3 * seconds,
         "clouds_per_s": batch / seconds, "compile_s": compile_s, "spread_ms": 1e3 * spread,
         "gib": gib, "b2b_ms": 1e3 * back_to_back, "b2b_clouds_per_s": batch / back_to_back}
  print(_format(row), flush=True)
  return row


def bench(args, config, dtype_name, variant, batch, views):
  classify, params, text = models.zeroshot_classifier(config, device_lib.DTYPES[dtype_name],
                                                      variant, views)
  return _row(args, f"points->logits {variant}", dtype_name, batch, classify, (params, text))


def bench_projector(args, batch, views):
  render = jax.jit(lambda p: projector.render_depth(projector.normalize_points(p), views))
  return _row(args, "projector alone", "float32", batch, render, ())


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
  parser.add_argument("--variants", nargs="+", default=["depth-xla"], choices=models.VARIANTS)
  parser.add_argument("--repeats", type=int, default=10)
  parser.add_argument("--tiny", action="store_true", help="a tiny CLIP instead of ViT-B/32")
  parser.add_argument("--no-projector", action="store_true", help="skip the projector-alone rows")
  args = parser.parse_args()
  config = models.clip_config(args.tiny)
  views = (cameras.VIEWS_ZERO_SHOT[:args.views] if args.views <= 6
           else cameras.VIEWS_PRETRAIN[:args.views])
  encoder = "tiny CLIP" if args.tiny else "ViT-B/32 (random weights)"
  print(f"zero-shot | {device_lib.describe()} | {encoder} | "
        f"{args.points} points, {len(views)} views, 224x224", flush=True)
  peak = device_lib.matmul_tflops(2048 if args.tiny else 8192)
  per_view = flops.vit_forward(config)
  ideal = peak * 1e12 / (per_view * len(views))
  print(f"bf16 matmul rate {peak:.1f} TFLOP/s; {per_view / 1e9:.3f} GFLOP per view -> "
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
