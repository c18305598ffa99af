"""Host-side cost of detection's cropping: scene points x proposal boxes -> crops.

  PYTHONPATH=. python bench/bench_detect_crops.py           # ScanNet-sized scenes
  PYTHONPATH=. python bench/bench_detect_crops.py --tiny    # a quick check

Cropping runs in numpy on the host while the device classifies the previous
crops, so per scene it should stay below the device's time for that scene's
boxes (see bench_zeroshot.py for crops/s of the classifier). Points are
uniform in an 8 x 8 x 3 m room, boxes 0.3-1.5 m with random headings; the
median of a few repeats is reported.
"""

import argparse
import statistics
import time

import numpy as np

from clip2point_jax.detection import boxes as box_lib


def bench(num_points, num_boxes, crop_points, repeats):
  rng = np.random.default_rng(0)
  points = rng.uniform([0, 0, 0], [8, 8, 3], (num_points, 3)).astype(np.float32)
  boxes = np.concatenate([rng.uniform([0, 0, 0], [8, 8, 3], (num_boxes, 3)),
                          rng.uniform(0.3, 1.5, (num_boxes, 3)), rng.uniform(-np.pi, np.pi, (num_boxes, 1))], 1)
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    box_lib.crop_boxes(points, boxes, num_points=crop_points, margin=0.1, min_points=5, rng=rng)
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--tiny", action="store_true")
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args()
  settings = ([(20_000, 32, 256)] if args.tiny else
              [(50_000, 256, 1024), (150_000, 256, 1024), (300_000, 256, 1024), (150_000, 64, 1024)])
  print(f"{'scene points':>12}  {'boxes':>5}  {'crop N':>6}  {'s / scene':>9}  {'boxes / s':>9}")
  for num_points, num_boxes, crop_points in settings:
    seconds = bench(num_points, num_boxes, crop_points, args.repeats)
    print(f"{num_points:>12}  {num_boxes:>5}  {crop_points:>6}  {seconds:>9.3f}  {num_boxes / seconds:>9.0f}",
          flush=True)


if __name__ == "__main__":
  main()
