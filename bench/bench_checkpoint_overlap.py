"""How much a checkpoint save slows the pre-training steps after it, by way of saving.

  PYTHONPATH=. python bench/bench_checkpoint_overlap.py --batch 256

Issue #26 asks for checkpoints that never block a step. The real train step
(`bench_pretrain.setup`, ViT-B/32, LAMB) runs in intervals of `--interval`
steps, each ended by fetching its metrics, as `tasks/pretrain.py` does; after
one interval a save starts, and the table gives the ms per step of the
intervals before and after it, the time the save call took on the training
thread, and how long a sampler thread found the interpreter lock held by
others in the first interval after it (a thread starved of the lock cannot
dispatch steps). Ways of saving:

- none: no save (the baseline);
- shipped: `Checkpointer.save` as the task runs it (copy on the devices, a
  worker hands it to orbax); run first, so it pays orbax's first-save costs as
  a run's first checkpoint does, and again last, warm;
- orbax_on_thread: orbax's own asynchronous save on the training thread (the
  earlier behaviour: the thread waits while orbax moves the state to the host);
- device_get_worker: only the copy and `jax.device_get` of it in a worker
  thread, no orbax: whether the transfer alone starves the training thread;
- host_async_worker: the same, with every copy's transfer to the host
  started on the training thread (`copy_to_host_async`) before the worker
  waits for them;
- yielding_worker: the same transfer one array at a time, the worker giving
  up the lock (`time.sleep(0)`) after each;
- pinned_host_worker: the state moved straight into the host's pinned memory
  (`device_put` to memory kind "pinned_host", no device copy), then
  `jax.device_get` of that in a worker;
- shipped_pinned_host: `Checkpointer.save` with that pinned-host copy in
  place of the device copy (what a fix would ship if pinned_host_worker wins);
- shipped_fast_switch: shipped with `sys.setswitchinterval(1e-4)`.
"""

import argparse
import contextlib
import shutil
import sys
import tempfile
import threading
import time

from clip2point_jax.core import xla_defaults

xla_defaults.apply()  # Before jax starts.

import jax  # pylint: disable=g-import-not-at-top
import numpy as np

from bench import bench_pretrain
from bench.lib import device as device_lib
from clip2point_jax.core import checkpoints, parallel

MODES = ("none", "shipped", "orbax_on_thread", "device_get_worker", "host_async_worker", "yielding_worker",
         "pinned_host_worker", "shipped_pinned_host", "shipped_fast_switch", "shipped_warm")


class LockSampler:
  """A thread that sleeps 0.2 ms at a time and adds up how late it wakes: time others held the lock."""

  def __init__(self):
    self.late, self._stop = 0.0, threading.Event()
    self._thread = threading.Thread(target=self._run, daemon=True)

  def _run(self):
    while not self._stop.is_set():
      start = time.perf_counter()
      time.sleep(2e-4)
      self.late += max(0.0, time.perf_counter() - start - 2e-4)

  def __enter__(self):
    self._thread.start()
    return self

  def __exit__(self, *exc):
    self._stop.set()
    self._thread.join()


def _pinned_host(tree):
  """`tree`'s arrays moved to the host's pinned memory, each by one transfer the device runs."""
  return jax.tree.map(lambda x: jax.device_put(x, x.sharding.with_memory_kind("pinned_host")), tree)


def _each_array_yielding(tree):
  for leaf in jax.tree.leaves(tree):
    np.asarray(leaf)
    time.sleep(0)  # let a waiting thread have the lock


def _in_thread(target, *args):
  thread = threading.Thread(target=target, args=args)
  thread.start()
  return thread


def start_save(mode, ckpt, state, step):
  """Starts one save the mode's way; returns the thread to join, if the mode made one."""
  if mode == "device_get_worker":
    return _in_thread(jax.device_get, checkpoints.copy_on_devices(state))
  if mode == "host_async_worker":
    snapshot = checkpoints.copy_on_devices(state)
    for leaf in jax.tree.leaves(snapshot):
      leaf.copy_to_host_async()
    return _in_thread(jax.device_get, snapshot)
  if mode == "yielding_worker":
    return _in_thread(_each_array_yielding, checkpoints.copy_on_devices(state))
  if mode == "pinned_host_worker":
    return _in_thread(jax.device_get, _pinned_host(state))
  if mode == "shipped_pinned_host":
    device_copy, checkpoints.copy_on_devices = checkpoints.copy_on_devices, _pinned_host
    try:
      ckpt.save(step, state, meta={"mode": mode})
    finally:
      checkpoints.copy_on_devices = device_copy
    return None
  ckpt.save(step, state, meta={"mode": mode})
  return None


def run_mode(mode, compiled, box, frozen, inputs, cache, args, root):
  """ms per step of each interval, the save call's seconds, the lock-late seconds after it."""
  directory = tempfile.mkdtemp(dir=root)
  ckpt = checkpoints.Checkpointer(directory, keep=1)
  if mode == "orbax_on_thread":
    ckpt._worker = None  # pylint: disable=protected-access  # the manager's own async save, on this thread
  worker = None
  interval_ms, save_s, late_s = [], float("nan"), float("nan")
  switch = sys.getswitchinterval()
  if mode == "shipped_fast_switch":
    sys.setswitchinterval(1e-4)
  try:
    for interval in range(args.intervals):
      sampled = interval == args.save_after + 1
      with LockSampler() if sampled else contextlib.nullcontext() as sampler:
        start = time.perf_counter()
        for i in range(args.interval):
          box[0], metrics = compiled(box[0], frozen, inputs[i % len(inputs)], cache)
        jax.device_get(metrics)
        interval_ms.append(1e3 * (time.perf_counter() - start) / args.interval)
      if sampled:
        late_s = sampler.late
      if interval == args.save_after and mode != "none":
        started = time.perf_counter()
        worker = start_save(mode, ckpt, box[0], interval)
        save_s = time.perf_counter() - started
  finally:
    sys.setswitchinterval(switch)
    if worker:
      worker.join()
    ckpt.close()
    shutil.rmtree(directory, ignore_errors=True)
  return interval_ms, save_s, late_s


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=256)
  parser.add_argument("--interval", type=int, default=20, help="steps between two metric fetches")
  parser.add_argument("--intervals", type=int, default=6)
  parser.add_argument("--save_after", type=int, default=2, help="the interval after which a save starts")
  parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
  parser.add_argument("--points", type=int, default=1024)
  parser.add_argument("--image_size", type=int, default=224)
  parser.add_argument("--tiny", action="store_true", help="a tiny CLIP at 64x64, for a CPU check")
  args = parser.parse_args()
  for name, value in (("attention", "auto"), ("residual_dtype", "auto"), ("negatives_group", 0),
                      ("cache_rows", 0), ("stack_layers", None)):
    setattr(args, name, value)
  if args.tiny:
    args.image_size = 64
  mesh = parallel.make_mesh()
  step, state, frozen, inputs, cache, _ = bench_pretrain.setup(args, "bfloat16", args.batch, mesh)
  compiled, compile_s = device_lib.compile_seconds(step, state, frozen, inputs[0], cache)
  box = [state]
  for x in inputs:  # warm up
    box[0], metrics = compiled(box[0], frozen, x, cache)
  jax.block_until_ready(metrics)
  leaves = jax.tree.leaves(box[0])
  print(f"checkpoint overlap | {device_lib.describe()} | batch {args.batch} | state {len(leaves)} arrays, "
        f"{sum(x.nbytes for x in leaves) / 2**30:.2f} GiB | compiled in {compile_s:.1f} s | "
        f"save after interval {args.save_after} of {args.intervals}, {args.interval} steps each", flush=True)
  header = " ".join(f"int{i} ms" for i in range(args.intervals))
  print(f"{'mode':<22} {header}  save call s  lock held by others s (interval after)", flush=True)
  root = tempfile.mkdtemp()
  for mode in args.modes:
    ms, save_s, late_s = run_mode(mode.replace("shipped_warm", "shipped"), compiled, box, frozen, inputs,
                                  cache, args, root)
    print(f"{mode:<22} " + " ".join(f"{m:7.2f}" for m in ms) + f"  {save_s:11.3f}  {late_s:8.3f}",
          flush=True)
  shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
  main()
