"""Each method's projection alone and its zero-shot (points -> logits), on the present device.

  PYTHONPATH=. python bench/bench_compare.py                      # ViT-B/32 shapes, bf16, batches 256 and 1024
  PYTHONPATH=. python bench/bench_compare.py --tiny --batch 8     # a tiny CLIP, for a CPU check

The methods are `render.mode` values: `hard` (CLIP2Point, 6 views),
`pointclip` (6 views at 128 px, resized) and `pointclip_v2` (10 views at
110 px, resized), all through the package's one projection path
(`projection.encode.view_images`) and zero-shot classifier
(`projection.zeroshot.make_classifier`), with the image tower of the
shipped defaults (bf16, `auto` kernels, bf16 residual stream) and random
ViT-B/32 weights (the speed does not depend on the values). First a
correctness check on this device: a PointCLIP mode's images equal its
projector's `clip_input(depth_maps(points))` exactly. "share" is the
projection's time over the zero-shot step's (issue #23's target: under 5%).
"""

import argparse

from clip2point_jax.core import xla_defaults

xla_defaults.apply()  # Before jax starts.

import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from bench.lib import device as device_lib  # pylint: disable=g-import-not-at-top
from bench.lib import inputs as inputs_lib
from bench.lib import models
from clip2point_jax.projection import encode, zeroshot
from clip2point_jax.projection import settings as settings_lib
from renderers import cameras
from renderers import pointclip, pointclip_v2

MODES = ("hard", "pointclip", "pointclip_v2")
PROJECTORS = {"pointclip": pointclip, "pointclip_v2": pointclip_v2}


def mode_settings(mode: str, image_size: int):
  views = cameras.VIEWS_ZERO_SHOT if mode == "hard" else None
  return settings_lib.from_config({"mode": mode, "image_size": image_size}, views)


def check_exact(mode: str, image_size: int, points: int) -> str:
  """A PointCLIP mode through the package's path against its projector, on this device."""
  clouds = jnp.asarray(inputs_lib.clouds(8, points, seed=7))
  settings = mode_settings(mode, image_size)
  ours = jax.jit(lambda p: encode.view_images(p, settings))(clouds)
  projector = PROJECTORS[mode]
  reference = jax.jit(lambda p: projector.clip_input(projector.depth_maps(p), image_size=image_size,
                                                      normalize=settings.clip_normalize))(clouds)
  # Unnormalised, the path gives one of the three equal channels (CLIP reads it as its RGB copy).
  ours, reference = np.asarray(ours), np.asarray(reference)[..., :np.shape(ours)[-1]]
  assert ours.shape == reference.shape and np.isfinite(ours).all(), (ours.shape, reference.shape)
  return f"{mode}: max |path - projector| = {np.abs(ours - reference).max():.3g} over {ours.size} values"


def encoder(config, dtype):
  """The shipped image tower reading grey depth or 3-channel images, as `encode.vision_encoder`."""
  tower = models.tower(config, dtype, "auto", dtype)

  def encode_views(params, views):
    if views.ndim == 4:
      return tower.apply({"params": params}, images=views)
    return tower.apply({"params": params}, grey=views)

  return encode_views, models.tower_params(config)


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--batch", type=int, nargs="+", default=[256, 1024])
  parser.add_argument("--points", type=int, default=1024)
  parser.add_argument("--repeats", type=int, default=10)
  parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
  parser.add_argument("--tiny", action="store_true")
  args = parser.parse_args()
  config = models.clip_config(tiny=args.tiny, image_size=32 if args.tiny else 224,
                              patch_size=16 if args.tiny else 32)
  size = config.vision.image_size
  dtype = jnp.float32 if args.tiny else jnp.bfloat16
  print(device_lib.describe(), flush=True)
  for mode in args.modes:
    if mode in PROJECTORS:
      print(check_exact(mode, size, args.points), flush=True)
  encode_views, params = encoder(config, dtype)
  text = jnp.asarray(inputs_lib.unit_rows(models.NUM_CLASSES, config.projection_dim))
  print(f"{'mode':<13} {'batch':>5} {'projection ms':>13} {'clouds/s':>9} {'zero-shot ms':>12} "
        f"{'clouds/s':>9} {'share':>6}", flush=True)
  rows = []
  for batch in args.batch:
    clouds = [inputs_lib.clouds(batch, args.points, seed) for seed in range(3)]
    for mode in args.modes:
      settings = mode_settings(mode, size)
      project = jax.jit(lambda p, s=settings: encode.view_images(p, s))
      classify = zeroshot.make_classifier(encode_views, settings)
      proj_s = device_lib.time_compiled(project, (), clouds, args.repeats)[0]
      zs_s = device_lib.time_compiled(classify, (params, text), clouds, args.repeats)[0]
      row = dict(mode=mode, batch=batch, projection_ms=1e3 * proj_s, projection_clouds_per_s=batch / proj_s,
                 zeroshot_ms=1e3 * zs_s, zeroshot_clouds_per_s=batch / zs_s, share=proj_s / zs_s)
      rows.append(row)
      print(f"{mode:<13} {batch:>5} {row['projection_ms']:>13.2f} {row['projection_clouds_per_s']:>9.0f} "
            f"{row['zeroshot_ms']:>12.2f} {row['zeroshot_clouds_per_s']:>9.0f} {100 * row['share']:>5.1f}%",
            flush=True)
  return rows


if __name__ == "__main__":
  main()
