"""Cost of detection's cropping: scene points x proposal boxes -> crops, on the host or the device.

  PYTHONPATH=. python bench/bench_detect_crops.py                       # ScanNet-sized scenes, both
  PYTHONPATH=. python bench/bench_detect_crops.py --where device        # the device cropper only
  PYTHONPATH=. python bench/bench_detect_crops.py --tiny                # a quick check
  PYTHONPATH=. python bench/bench_detect_crops.py --where device --step-elements 4194304 33554432

`host` is `boxes.crop_boxes` (numpy, the detect task's `crop.where=host`);
`device` is `device_crops.crop_boxes` (one jitted program, the default),
timed after a first call that compiles it (its time is the `compile s`
column), each call waited for until its crops are computed; its time
includes the host's part (padding the points, drawing the uniforms). With
`crop.where=host` the host crops while the device classifies the previous
crops, so per scene it should stay below the device's time for that scene's
boxes (see bench_zeroshot.py for crops/s of the classifier). Points are
uniform in an 8 x 8 x 3 m room, boxes 0.3-1.5 m with random headings; the
median of a few repeats is reported.
"""

import argparse
import statistics
import time

import jax
import numpy as np

from clip2point_jax.detection import boxes as box_lib
from clip2point_jax.detection import device_crops

CROPPERS = {"host": box_lib.crop_boxes, "device": device_crops.crop_boxes}


def _scene(num_points, num_boxes):
  rng = np.random.default_rng(0)
  points = rng.uniform([0, 0, 0], [8, 8, 3], (num_points, 3)).astype(np.float32)
  boxes = np.concatenate([rng.uniform([0, 0, 0], [8, 8, 3], (num_boxes, 3)),
                          rng.uniform(0.3, 1.5, (num_boxes, 3)), rng.uniform(-np.pi, np.pi, (num_boxes, 1))], 1)
  return points, boxes, rng


def bench(where, num_points, num_boxes, crop_points, repeats, step_elements=device_crops.STEP_ELEMENTS):
  """(median seconds per scene, seconds of the first call: None on the host)."""
  points, boxes, rng = _scene(num_points, num_boxes)
  options = {"step_elements": step_elements} if where == "device" else {}

  def once():
    start = time.perf_counter()
    jax.block_until_ready(CROPPERS[where](points, boxes, num_points=crop_points, margin=0.1, min_points=5,
                                          rng=rng, **options))
    return time.perf_counter() - start

  first = once() if where == "device" else None  # compiles
  return statistics.median(once() for _ in range(repeats)), first


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--tiny", action="store_true")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--where", nargs="+", choices=tuple(CROPPERS), default=["host", "device"])
  parser.add_argument("--step-elements", type=int, nargs="+", default=[device_crops.STEP_ELEMENTS],
                      help="device: box rows x points per step of its loop (several: one row each)")
  args = parser.parse_args()
  settings = ([(20_000, 32, 256)] if args.tiny else
              [(50_000, 256, 1024), (150_000, 256, 1024), (300_000, 256, 1024), (150_000, 64, 1024)])
  print(f"backend {jax.default_backend()} ({jax.devices()[0].device_kind})")
  print(f"{'where':>6}  {'step':>8}  {'scene points':>12}  {'boxes':>5}  {'crop N':>6}  {'s / scene':>9}"
        f"  {'boxes / s':>9}  {'compile s':>9}")
  runs = [(where, step) for where in args.where
          for step in (args.step_elements if where == "device" else [None])]
  for where, step in runs:
    for num_points, num_boxes, crop_points in settings:
      seconds, first = bench(where, num_points, num_boxes, crop_points, args.repeats,
                             **({"step_elements": step} if step else {}))
      step_cell = f"{step:>8}" if step else f"{'-':>8}"
      compile_cell = f"{first:>9.2f}" if first is not None else f"{'-':>9}"
      print(f"{where:>6}  {step_cell}  {num_points:>12}  {num_boxes:>5}  {crop_points:>6}  {seconds:>9.3f}  "
            f"{num_boxes / seconds:>9.0f}  {compile_cell}", flush=True)


if __name__ == "__main__":
  main()
