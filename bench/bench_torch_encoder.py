"""Reference: transformers' PyTorch CLIP image tower against our Flax one.

  PYTHONPATH=. python bench/bench_torch_encoder.py --batch 192 768

The original CLIP2Point encodes its depth maps with PyTorch's CLIP ViT-B/32.
This times that tower (transformers' `CLIPVisionModelWithProjection`, random
weights, ViT-B/32 shape) and our Flax `CLIPVisionEncoder` on the same device
and the same random images, so the encoder part of the speed-up is measured
and not guessed. It does not time PyTorch3D's rasteriser, which is not
installed here.
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import torch
import transformers

from bench.lib import device as device_lib
from bench.lib import models
from bench.lib import timing


def torch_rows(batch, repeats, device):
  model = transformers.CLIPVisionModelWithProjection(transformers.CLIPVisionConfig()).to(device).eval()
  images = torch.randn(batch, 3, 224, 224, device=device)
  rows = []
  variants = [("float32", None, False), ("float16 autocast", torch.float16, False),
              ("bfloat16 autocast", torch.bfloat16, False)]
  if device.type == "cuda":  # JAX's float32 matmuls on a GPU use TF32 too.
    variants.insert(1, ("float32 + TF32", None, True))
  for name, dtype, tf32 in variants:
    torch.backends.cuda.matmul.allow_tf32 = tf32

    def step():
      with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        out = model(pixel_values=images).image_embeds
      if device.type == "cuda":
        torch.cuda.synchronize()
      return out
    rows.append((f"torch {name}", batch, timing.median_seconds(step, repeats, warmup=2)))
    print(*rows[-1], flush=True)
  return rows


def jax_rows(batch, repeats):
  config = models.clip_config()
  images = jnp.asarray(np.random.default_rng(0).normal(size=(batch, 224, 224, 3)), jnp.float32)
  params = models.tower_params(config)
  rows = []
  for name, dtype in (("flax float32", jnp.float32), ("flax bfloat16", jnp.bfloat16)):
    # "auto" kernels and a float32 residual stream, as this comparison has always run.
    model = models.tower(config, dtype, "auto", jnp.float32)
    encode = jax.jit(lambda p, x: model.apply({"params": p}, x))
    rows.append((name, batch, timing.median_seconds(lambda: encode(params, images).block_until_ready(), repeats, warmup=2)))
    print(*rows[-1], flush=True)
  return rows


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, nargs="+", default=[192, 768])
  parser.add_argument("--repeats", type=int, default=10)
  args = parser.parse_args()
  device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
  rows = []
  for batch in args.batch:
    rows += torch_rows(batch, args.repeats, device) + jax_rows(batch, args.repeats)
  print(f"\nViT-B/32 image tower, 224x224 | torch {torch.__version__} on {device} "
        f"({torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}) | "
        f"{device_lib.describe()}")
  print(f"{'encoder':>20} {'images':>7} {'ms':>9} {'images/s':>10}")
  for name, batch, seconds in rows:
    print(f"{name:>20} {batch:>7} {1e3 * seconds:>9.2f} {batch / seconds:>10.0f}")


if __name__ == "__main__":
  main()
