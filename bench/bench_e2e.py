"""End-to-end speed as users run it (issue #26): each task's command against its step alone.

  bash bench/run_device.sh e2e                              # one GPU call: the table (~6-7 minutes)
  PYTHONPATH=. python bench/bench_e2e.py --out DIR          # the same on whatever device is present
  PYTHONPATH=. python bench/bench_e2e.py --tiny --out DIR   # tiny CLIP, tiny data: a CPU smoke run

One process does it all, in three phases:

1. Set-up, as a user would, three commands side by side: the project's own
   tool writes a CLIP with ViT-B/32's towers and random weights in Hugging
   Face format (`make_tiny_clip --vit_b_32`; speed does not depend on the
   values), and `configs/prepare.py` prepares the built-in shapes twice:
   - set A, the default options (64 + 16 shapes per class, 640 shapes, with
     their 10 rendered RGB views each) for pre-training and few-shot. The
     views are why it is not bigger: PNG-coding 10 views takes ~45 ms of
     one 2.6 GHz Xeon core per shape (the builder spreads it over up to 16
     threads since 2026-12-07; the mesh renderer itself is ~3 ms a shape on
     an H100), and caching their CLIP features decodes every PNG again.
     Both scale with the shapes, not the step. Pre-training reads them through the
     config's default image source, CLIP features cached once per (shape,
     view) (`image_features="cache"`), so its step is the recipe's whatever
     the dataset's size.
   - set B, several thousand clouds without views (1 + 1,024 per class,
     8,200 shapes, ~1 ms a shape: ~15 s) for zero-shot.
2. The commands, one after the other, each its own `python -m
   clip2point_jax.main --config configs/<task>.py ...` process with a time
   limit, in a fresh workdir under --root: pre-training (400 steps at batch
   256, one evaluation and its checkpoint at step 200), zero-shot over set
   B's 8,192 test clouds at batch 1,024, 16-shot GDPA (feature caching of
   both splits, 3 seeds x 100 epochs), detection on 256 synthetic scenes of
   8 shapes. Each one's throughput is read from what the run itself writes
   in its workdir (metrics.jsonl / metrics.json); a field the run did not
   write is shown as "n/a (field X missing)".
3. The step alone, in this process, for the same settings: the pre-training
   step (`bench_pretrain.bench`), the zero-shot classifier
   (`bench_zeroshot.bench`, the shipped default variant), few-shot's caching
   encoder and its 100 epochs of cached steps (built from the same config as
   the command, as `tasks/fewshot.py` builds them), detection's crop
   classifier alone (`detection.classifiers.build`), and the README's
   library path ("As a library": `hf_clip.load_clip(dir)` with its
   defaults, the params put on the device once, `zeroshot.make_classifier`,
   `classify(params, text, points)` with numpy points) at batch 1,024. JAX starts in this process only here:
   the commands before had the GPU to themselves, as a user's would.

The table gives, per row, the command's throughput, the step-only figure,
their ratio against the 90% target, and compile seconds apart (the
command's, as it logged them, and the step-only's). Pre-training has two
rows:

- steps: the run's own `samples_per_second` over its interval records,
  combined as total samples over total seconds (each interval weighs by its
  steps; the record right after the evaluation included, none left out).
  The intervals exclude evaluations and checkpoints by construction.
- window: wall-clock samples/s from the first interval record (step 20, so
  the compiling first step is outside) to the last (step 400), the
  evaluation and checkpoint save at step 200 inside. The run's records carry
  no timestamps, so this process watches metrics.jsonl while the run
  writes it and stamps each record as it lands (every 10 ms); subtracting
  compile_seconds from the command's wall time instead would also count
  loading CLIP, reading the data and caching the image features.

Few-shot reads `metrics.json`'s `train_throughput` (`aggregate`, else the
first seed's) and `feature_cache.train` / `.test` (top level, else the
first seed's). Results go to stdout and, as `e2e.json` and `e2e.md`, to
--out ($OUT on the device tool). `--tiny` runs the same phases with a tiny
CLIP and a few shapes (about a minute on two CPU cores); its ratios mean
nothing (there its pre-training step-only encoder has 16 px patches, the
command's CLIP 32 px).
"""

import argparse
import contextlib
import dataclasses
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from typing import Any, Optional

from clip2point_jax.core import xla_defaults

xla_defaults.apply()  # Before jax starts, as the CLI does.

import numpy as np  # pylint: disable=g-import-not-at-top

from bench import bench_pretrain, bench_zeroshot
from bench.lib import timing

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = 0.90  # each command's throughput over its step-only figure (issue #26)
ZEROSHOT_VARIANT = "depth-pallas-bf16res"  # what the tasks' defaults run on a GPU (bench_zeroshot's names)
TASKS = ("pretrain", "zeroshot", "fewshot", "detect")


@dataclasses.dataclass(frozen=True)
class Sizes:
  """What the run is made of; `FULL` for a GPU, `TINY` for a CPU smoke run."""
  vit_b_32: bool  # the CLIP's towers: ViT-B/32's, or the tiny ones
  dtype: str  # the tasks' clip.dtype
  points: int  # points per cloud the tasks read
  # Set A (with RGB views): pre-training and few-shot. None: the builder's defaults (64, 16, 2048).
  a_train: Optional[int]
  a_test: Optional[int]
  a_points: Optional[int]
  # Set B (no views): zero-shot.
  b_train: int
  b_test: int
  b_points: int
  pretrain_batch: int
  pretrain_steps: int
  log_every: int
  zeroshot_batch: int
  library_batch: int
  shots: int
  fewshot_epochs: int
  encode_batch: int  # few-shot's caching batch (clouds)
  detect_scenes: int
  detect_objects: int
  detect_batch: int
  repeats: int  # timed calls of each step-only figure
  limits: dict  # seconds per phase


FULL = Sizes(
    vit_b_32=True, dtype="bfloat16", points=1024, a_train=None, a_test=None, a_points=None,
    b_train=1, b_test=1024, b_points=2048, pretrain_batch=256, pretrain_steps=400, log_every=20,
    zeroshot_batch=1024, library_batch=1024, shots=16, fewshot_epochs=100, encode_batch=32,
    detect_scenes=256, detect_objects=8, detect_batch=256, repeats=10,
    limits={"setup": 200, "pretrain": 200, "zeroshot": 90, "fewshot": 120, "detect": 100})
TINY = Sizes(
    vit_b_32=False, dtype="float32", points=256, a_train=2, a_test=1, a_points=512,
    b_train=1, b_test=4, b_points=512, pretrain_batch=8, pretrain_steps=20, log_every=5,
    zeroshot_batch=8, library_batch=8, shots=2, fewshot_epochs=10, encode_batch=8,
    detect_scenes=2, detect_objects=4, detect_batch=8, repeats=2,
    limits={"setup": 200, "pretrain": 150, "zeroshot": 90, "fewshot": 120, "detect": 90})
# Seconds kept back for each task's step-only phase when the commands' limits are cut to the
# budget (an H100 took about 40 s for pre-training's): only the tasks that run keep theirs, so a
# run of one task gives its command the rest.
STEP_ONLY_RESERVE = {"pretrain": 45, "zeroshot": 60, "fewshot": 30, "detect": 15}


# --------------------------------------------------------------------- configs


def set_a_options(s: Sizes) -> dict:
  """`configs/prepare.py` fields of set A (empty for the builder's defaults)."""
  options = {"num_per_class_train": s.a_train, "num_per_class_test": s.a_test,
             "num_points_stored": s.a_points}
  return {k: v for k, v in options.items() if v is not None}


def set_b_options(s: Sizes) -> dict:
  return {"num_per_class_train": s.b_train, "num_per_class_test": s.b_test,
          "num_points_stored": s.b_points, "render_images": False}


def task_configs(s: Sizes, clip_dir: str, data_dir: str) -> dict[str, tuple[str, dict]]:
  """{task: (config file with its arguments, {dotted field: value})}: each command's settings.

  Only non-tiny configs leave `data.primitives` empty, and the command line
  can set fields of a block only where the config has them; so the tasks
  that read the built-in shapes with other options than the defaults start
  from their `tiny` preset and set back every field it changes (the tests
  check the full-size result differs from the plain config only in data,
  CLIP and schedule fields).
  """
  full = s.vit_b_32
  a = {"num_per_class_train": s.a_train or 64, "num_per_class_test": s.a_test or 16,
       "num_points_stored": s.a_points or 2048}
  pretrain = {
      "clip.name": clip_dir, "clip.dtype": s.dtype, "data.data_dir": data_dir,
      "data.num_points": s.points, **{f"data.primitives.{k}": v for k, v in a.items()},
      "render.image_size": 224, "render.radius": 0.02 if full else 0.06,
      "batch_size": s.pretrain_batch, "num_steps": s.pretrain_steps,
      "log_every": s.log_every, "eval_every_steps": s.pretrain_steps // 2,
      "checkpoint.every_steps": 1000 if full else 100}
  if full:  # the tiny preset's schedule, cache and evaluation settings set back
    pretrain.update({"optim.restart_steps": 0, "optim.learning_rate": 6e-3,
                     "image_cache.batch_size": 64, "workers": 8})
  for name in ("val", "downstream"):
    pretrain.update({f"evals.{name}.batch_size": 64 if full else s.pretrain_batch,
                     f"evals.{name}.data.num_points": s.points})
  zeroshot = {
      "clip.name": clip_dir, "clip.dtype": s.dtype, "data.data_dir": data_dir,
      "data.num_points": s.points, "batch_size": s.zeroshot_batch,
      **{f"data.primitives.{k}": v for k, v in set_b_options(s).items()}}
  fewshot = {"clip.name": clip_dir, "data.data_dir": data_dir}
  if full:  # the plain config reads set A (the defaults) as it is
    fewshot_config = f"configs/fewshot.py:dataset=primitives,shots={s.shots}"
  else:
    fewshot_config = f"configs/fewshot.py:dataset=primitives,shots={s.shots},tiny"
    fewshot.update({"epochs": s.fewshot_epochs, "encode_batch_size": s.encode_batch,
                    **{f"data.primitives.{k}": v for k, v in a.items()}})
  detect = {"clip.name": clip_dir, "clip.dtype": s.dtype, "num_plot_scenes": 1}
  if full:
    detect.update({"data.synthetic.num_scenes": s.detect_scenes,
                   "data.synthetic.num_objects": s.detect_objects, "batch_size": s.detect_batch})
  return {
      "pretrain": ("configs/pretrain.py:tiny", pretrain),
      "zeroshot": ("configs/zeroshot.py:dataset=primitives,tiny", zeroshot),
      "fewshot": (fewshot_config, fewshot),
      "detect": ("configs/detect.py:dataset=synthetic" + ("" if full else ",tiny"), detect),
  }


def flag(field: str, value: Any) -> str:
  """`--config.<field>=<value>` as config_flags parses it (tuples as Python literals)."""
  return f"--config.{field}={value!r}" if isinstance(value, tuple) else f"--config.{field}={value}"


def load_config(spec: str, overrides: dict):
  """The ConfigDict the command line builds from `spec` and `overrides`, in this process."""
  from clip2point_jax.core.config_args import load_sibling  # pylint: disable=g-import-not-at-top
  path, _, arg = spec.partition(":")
  name = os.path.basename(path)[:-3]
  config = load_sibling(os.path.join(REPO_ROOT, path), name).get_config(arg or None)
  with config.unlocked():
    for dotted, value in overrides.items():
      *parents, leaf = dotted.split(".")
      node = config
      for p in parents:
        node = node[p]
      if leaf not in node:
        raise KeyError(f"{spec} has no field {dotted}")
      node[leaf] = value
  return config


# -------------------------------------------------------------------- commands


@dataclasses.dataclass
class Command:
  """One command's run: its exit, wall time and log; `stamps` (line -> when it landed) of a watched file."""
  name: str
  returncode: Optional[int] = None
  seconds: float = 0.0
  timed_out: bool = False
  log: str = ""
  stamps: list = dataclasses.field(default_factory=list)  # [(monotonic seconds, parsed JSON record)]

  @property
  def ok(self) -> bool:
    return self.returncode == 0 and not self.timed_out

  def status(self) -> str:
    if self.timed_out:
      return f"timed out after {self.seconds:.0f} s"
    return "ok" if self.returncode == 0 else f"exit {self.returncode}"


def _read_new_lines(path: str, offset: int) -> tuple[list[str], int]:
  """The complete lines appended to `path` since byte `offset`, and the new offset."""
  try:
    with open(path, "rb") as f:
      f.seek(offset)
      data = f.read()
  except FileNotFoundError:
    return [], offset
  end = data.rfind(b"\n") + 1
  return data[:end].decode().splitlines(), offset + end


def run_command(name: str, argv: list[str], log_path: str, limit: float, env=None,
                watch: Optional[str] = None, poll: float = 0.01) -> Command:
  """Runs `argv` from the repository's root, output to `log_path`, killed after `limit` seconds.

  With `watch`, the JSON lines appended to that file are stamped with the
  time they were seen (polled every `poll` seconds).
  """
  result = Command(name)
  offset = 0
  start = time.monotonic()
  with open(log_path, "w") as log:
    # In this process's group, so a `timeout` that stops this process stops the command too.
    proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    while proc.poll() is None:
      if time.monotonic() - start > limit:
        result.timed_out = True
        proc.kill()
        proc.wait()
        break
      if watch:
        lines, offset = _read_new_lines(watch, offset)
        now = time.monotonic()
        result.stamps += [(now, json.loads(line)) for line in lines if line.strip()]
      time.sleep(poll)
  result.seconds = time.monotonic() - start
  result.returncode = proc.returncode
  if watch:  # Lines written just before the exit.
    lines, offset = _read_new_lines(watch, offset)
    now = time.monotonic()
    result.stamps += [(now, json.loads(line)) for line in lines if line.strip()]
  with open(log_path, errors="replace") as f:
    result.log = f.read()
  return result


def cli(config: str, workdir: str, overrides: dict) -> list[str]:
  return [sys.executable, "-m", "clip2point_jax.main", "--config", config, "--workdir", workdir,
          *(flag(k, v) for k, v in overrides.items())]


def show(command: Command, lines: int = 12) -> None:
  """The command's status and the end of its log (more of it when it failed)."""
  # A progress bar redraws its line after carriage returns: keep what it last showed.
  tail = [l.split("\r")[-1] for l in command.log.split("\n")]
  tail = [l for l in tail if l.strip()]
  keep = tail[-(lines if command.ok else 4 * lines):]
  print(f"--- {command.name}: {command.status()} in {command.seconds:.1f} s", flush=True)
  for line in keep:
    print(f"    {line[:300]}")


def setup(s: Sizes, root: str, data_dir: str, clip_dir: str, env, limit: float) -> list[Command]:
  """Writes the CLIP and prepares sets A and B, three processes side by side."""
  # Side by side on one GPU: no process may take 75% of its memory up front.
  env = dict(env, XLA_PYTHON_CLIENT_PREALLOCATE="false")
  jobs = {}
  if not os.path.exists(os.path.join(clip_dir, "model.safetensors")):
    jobs["write CLIP"] = [sys.executable, "-m", "clip2point_jax.tools.make_tiny_clip", clip_dir,
                          *(["--vit_b_32"] if s.vit_b_32 else [])]
  for label, options in (("prepare set A", set_a_options(s)), ("prepare set B", set_b_options(s))):
    workdir = os.path.join(root, "work", label.replace(" ", "_"))
    jobs[label] = cli("configs/prepare.py:dataset=primitives", workdir, {"data_dir": data_dir, **options})
  procs = {}
  start = time.monotonic()
  for label, argv in jobs.items():
    log_path = os.path.join(root, f"{label.replace(' ', '_')}.log")
    log = open(log_path, "w")  # pylint: disable=consider-using-with
    procs[label] = (subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT),
                    log, log_path)
  done = {label: Command(label) for label in jobs}
  while any(c.returncode is None and not c.timed_out for c in done.values()):
    for label, (proc, _, _) in procs.items():
      command = done[label]
      if command.returncode is not None or command.timed_out:
        continue
      if proc.poll() is not None:
        command.returncode, command.seconds = proc.returncode, time.monotonic() - start
      elif time.monotonic() - start > limit:
        command.timed_out, command.seconds = True, time.monotonic() - start
        proc.kill()
        proc.wait()
    time.sleep(0.05)
  for label, (_, log, log_path) in procs.items():
    log.close()
    with open(log_path, errors="replace") as f:
      done[label].log = f.read()
    show(done[label], lines=4)
  return list(done.values())


# ------------------------------------------------------- what the commands wrote


NA = "n/a"


def _missing(field: str) -> str:
  return f"{NA} (field {field} missing)"


def _get(record: Optional[dict], field: str):
  """(value, None) or (None, "n/a (field ... missing)") for a number at a dotted path."""
  node = record
  for part in field.split("."):
    if not isinstance(node, dict) or node.get(part) is None:
      return None, _missing(field)
    node = node[part]
  return float(node), None


def _read_json(path: str) -> Optional[dict]:
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def pretrain_figures(command: Command, batch: int) -> dict:
  """The run's steady samples/s, its wall-clock window samples/s and compile seconds (module doc)."""
  records = [r for _, r in command.stamps]
  intervals = [(t, r) for t, r in command.stamps if "loss" in r]
  out = {"steps": None, "steps_note": None, "window": None, "window_note": None,
         "compile_s": None, "compile_note": None, "window_steps": None, "evals_inside": 0}
  if not intervals:
    note = f"{NA} (no interval records in metrics.jsonl)"
    return dict(out, steps_note=note, window_note=note, compile_note=note)
  out["compile_s"], out["compile_note"] = _get(intervals[0][1], "compile_seconds")
  samples = seconds = 0.0
  previous = 1  # The first step compiles; the first interval times the ones after it.
  for _, r in intervals:
    rate, note = _get(r, "samples_per_second")
    if note:
      out["steps_note"] = note
      break
    steps = int(r["step"]) - previous
    previous = int(r["step"])
    samples += steps * batch
    seconds += steps * batch / rate
  else:
    out["steps"] = samples / seconds if seconds else None
  (t0, first), (t1, last) = intervals[0], intervals[-1]
  steps = int(last["step"]) - int(first["step"])
  out["window_steps"] = (int(first["step"]), int(last["step"]))
  out["evals_inside"] = sum(1 for r in records if any(k.endswith("_top1") for k in r)
                            and int(first["step"]) < int(r["step"]) < int(last["step"]))
  if steps and t1 > t0:
    out["window"] = steps * batch / (t1 - t0)
  else:
    out["window_note"] = f"{NA} (one interval record)"
  return out


def fewshot_figures(metrics: Optional[dict]) -> dict:
  """Training epochs/s, caching clouds/s of both splits and their compile seconds from metrics.json."""
  out = {}
  if metrics is None:
    note = f"{NA} (no metrics.json)"
    return {k: (None, note) for k in ("epochs", "train_compile", "cache_train", "cache_train_compile",
                                      "cache_test", "cache_test_compile")}
  seeds = metrics.get("per_seed") or {}
  first = seeds[next(iter(seeds))] if seeds else {}
  throughput = (metrics.get("aggregate") or {}).get("train_throughput") or first.get("train_throughput")
  out["epochs"] = _get({"train_throughput": throughput}, "train_throughput.epochs_per_second")
  out["train_compile"] = _get(first, "train_throughput.compile_seconds")
  cache = metrics.get("feature_cache") or first.get("feature_cache")
  for split in ("train", "test"):
    entry = (cache or {}).get(split)
    if isinstance(entry, dict) and entry.get("cached"):
      note = f"{NA} (the {split} features came from a cache)"
      out[f"cache_{split}"] = out[f"cache_{split}_compile"] = (None, note)
      continue
    out[f"cache_{split}"] = _get({"feature_cache": cache}, f"feature_cache.{split}.clouds_per_second")
    out[f"cache_{split}_compile"] = _get({"feature_cache": cache}, f"feature_cache.{split}.compile_seconds")
  return out


# ------------------------------------------------------------------ step alone


def assert_no_backend():
  """The commands must find the accelerator free: this process may not have started JAX on it.

  (JAX takes 75% of a GPU's memory when it starts. A CPU backend holds
  nothing: the tests run this in a process where JAX may have started.)
  """
  if "jax" not in sys.modules:
    return
  from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top
  if xla_bridge.backends_are_initialized():
    import jax  # pylint: disable=g-import-not-at-top
    if jax.default_backend() != "cpu":
      raise RuntimeError("JAX started on the accelerator before the commands ran")


def time_calls(call, inputs: list, repeats: int) -> dict:
  """Seconds of `call(x)`: the first (compiling) call, the median waited call, and back to back."""
  import jax  # pylint: disable=g-import-not-at-top
  _, first = timing.seconds_of(lambda: jax.block_until_ready(call(inputs[0])))
  for x in inputs[1:]:
    jax.block_until_ready(call(x))
  calls = iter(range(repeats))
  waited = timing.waited_seconds(lambda: jax.block_until_ready(call(inputs[next(calls) % len(inputs)])),
                                 repeats)
  b2b = timing.back_to_back_seconds(lambda i: call(inputs[i % len(inputs)]), jax.block_until_ready, repeats)
  return {"compile_s": first, "waited_s": statistics.median(waited), "b2b_s": b2b}


def step_pretrain(s: Sizes, tiny: bool) -> dict:
  """`bench_pretrain.bench` at the command's batch and points (ViT-B/32, or its tiny CLIP)."""
  parser = argparse.ArgumentParser()
  bench_pretrain.add_model_args(parser)
  args = parser.parse_args((["--tiny", "--image_size", "224"] if tiny else [])
                           + ["--points", str(s.points)])
  bench_pretrain.finish_model_args(args)
  args.repeats, args.profile = s.repeats, False
  row = bench_pretrain.bench(args, s.dtype, s.pretrain_batch)
  return {"rate": row["samples_per_s"], "compile_s": row["compile_s"]}


def step_zeroshot(s: Sizes, tiny: bool, batch: int) -> dict:
  """`bench_zeroshot.bench`'s back-to-back clouds/s at `batch` (the task's loop runs batches so)."""
  from bench.lib import models  # pylint: disable=g-import-not-at-top
  from renderers import cameras  # pylint: disable=g-import-not-at-top
  zs_args = argparse.Namespace(points=s.points, repeats=s.repeats)
  with contextlib.redirect_stdout(io.StringIO()):  # its own row line
    row = bench_zeroshot.bench(zs_args, models.clip_config(tiny), s.dtype,
                               "depth-xla" if tiny else ZEROSHOT_VARIANT, batch, cameras.VIEWS_ZERO_SHOT)
  return {"rate": row["b2b_clouds_per_s"], "compile_s": row["compile_s"]}


def library_zeroshot(s: Sizes, clip_dir: str) -> dict:
  """The README's "As a library" snippet, timed: load_clip's defaults, the params put on the
  device once (as the README does), numpy points in."""
  import jax  # pylint: disable=g-import-not-at-top
  from bench.lib import inputs  # pylint: disable=g-import-not-at-top
  from clip2point_jax.data import primitives  # pylint: disable=g-import-not-at-top
  from clip2point_jax.loading import hf_clip  # pylint: disable=g-import-not-at-top
  from clip2point_jax.projection import zeroshot  # pylint: disable=g-import-not-at-top
  from renderers import cameras  # pylint: disable=g-import-not-at-top

  clip = hf_clip.load_clip(clip_dir)
  params = jax.device_put(clip.params)  # As the README does: once, not on every call.
  text = zeroshot.class_text_features(clip, list(primitives.CLASS_NAMES))
  classify = zeroshot.make_classifier(zeroshot.clip_depth_encoder(clip), views=cameras.VIEWS_ZERO_SHOT)
  clouds = [np.asarray(inputs.clouds(s.library_batch, s.points, seed)) for seed in range(3)]
  t = time_calls(lambda points: classify(params, text, points), clouds, s.repeats)
  return {"rate": s.library_batch / t["b2b_s"], "compile_s": t["compile_s"]}


def step_fewshot(s: Sizes, config, num_train: int) -> dict:
  """Few-shot's caching encoder on `encode_batch_size` clouds, and its epochs of cached steps.

  Built as `tasks/fewshot.py` builds them, from the command's config: the
  frozen paths of its CLIP, `dual_path.make_view_encoder` jitted; the GDPA,
  AdamW and `training.make_steps`, an epoch of `epoch_orders` per call
  (`cached_epoch`) over features of the train split's shape with one transfer
  of the metrics per epoch, as `gdpa_run.train_one_seed` does, without its
  checkpoints and bars.
  The first epoch (compiling) is timed apart.
  """
  import jax  # pylint: disable=g-import-not-at-top
  from bench.lib import inputs  # pylint: disable=g-import-not-at-top
  from clip2point_jax.core import parallel  # pylint: disable=g-import-not-at-top
  from clip2point_jax.projection import dual_path, encode as encode_lib  # pylint: disable=g-import-not-at-top
  from clip2point_jax.projection import settings as render_settings  # pylint: disable=g-import-not-at-top
  from clip2point_jax.training import gdpa as training, gdpa_run  # pylint: disable=g-import-not-at-top

  mesh = parallel.make_mesh()
  render = render_settings.from_config(config.render, config.views,
                                       align_modelnet=config.data.align_modelnet)
  paths = dual_path.load_frozen_paths(config.clip, config.depth_encoder, image_size=render.image_size)
  encode = jax.jit(dual_path.make_view_encoder(encode_lib.vision_encoder(paths.loaded), render,
                                               shared=paths.shared, point_model=paths.point_model))
  encoders = dual_path.put_encoders(paths, parallel.replicated(mesh))
  batch = parallel.round_to_devices(config.encode_batch_size, mesh)
  clouds = [parallel.global_batch(mesh, {"points": np.asarray(inputs.clouds(
      batch, config.data.num_points, seed))})["points"] for seed in range(3)]
  t = time_calls(lambda points: encode(encoders, points, None), clouds, s.repeats)
  caching = {"rate": batch / t["b2b_s"], "compile_s": t["compile_s"]}

  dim, views, classes = paths.feature_dim, len(config.views), 8
  rng = np.random.default_rng(0)
  features = lambda: rng.normal(size=(num_train, views, dim)).astype(np.float32)
  clip = features()
  data = training.to_device({"clip": clip, "depth": clip if paths.shared else features(),
                             "label": rng.integers(0, classes, num_train).astype(np.int32)}, mesh)
  text = jax.device_put(inputs.unit_rows(classes, dim), parallel.replicated(mesh))
  subset = np.arange(min(classes * config.shots, num_train))
  batch_size = gdpa_run.effective_batch_size(config.batch_size, len(subset), mesh)
  model, tx, _ = training.build(config, dim, point_path=paths.point_path)
  steps = training.make_steps(model, tx, mesh)
  orders = jax.device_put(training.epoch_orders(subset, batch_size, 0, config.epochs),
                          parallel.replicated(mesh))
  state, frozen = training.init_state(model, tx, mesh, seed=0, num_views=views, features=dim,
                                      trainable_patterns=config.optim.trainable, num_classes=classes)

  def epoch(e):
    nonlocal state
    state, metrics = steps["cached_epoch"](state, frozen, text, data, orders[e])
    jax.device_get(metrics)  # The task's one transfer per epoch.

  _, first = timing.seconds_of(lambda: epoch(0))
  _, rest = timing.seconds_of(lambda: [epoch(e) for e in range(1, config.epochs)])
  training_rate = {"rate": (config.epochs - 1) / rest if config.epochs > 1 else None, "compile_s": first}
  return {"caching": caching, "training": training_rate}


def step_detect(s: Sizes, config) -> dict:
  """Detection's crop classifier alone (`classifiers.build`, as the task builds it) at its batch."""
  from bench.lib import inputs  # pylint: disable=g-import-not-at-top
  from clip2point_jax.core import parallel  # pylint: disable=g-import-not-at-top
  from clip2point_jax.detection import classifiers, scannet  # pylint: disable=g-import-not-at-top

  mesh = parallel.make_mesh()
  _, prompt_names = scannet.resolve_classes(config.data.classes)
  classify = classifiers.build(config, prompt_names, mesh)
  batch, n = parallel.round_to_devices(config.batch_size, mesh), config.crop.num_points
  rng = np.random.default_rng(0)
  crops = []
  for seed in range(3):
    points = np.asarray(inputs.clouds(batch, n, seed))
    # Crops of fewer points than crop.num_points are padded; a quarter of each crop here.
    mask = np.arange(n)[None, :] < rng.integers(3 * n // 4, n + 1, (batch, 1))
    crops.append(parallel.global_batch(mesh, {"points": points, "mask": mask}))
  t = time_calls(lambda c: classify(c["points"], c["mask"]), crops, s.repeats)
  return {"rate": batch / t["b2b_s"], "compile_s": t["compile_s"]}


# ----------------------------------------------------------------------- table


@dataclasses.dataclass
class Row:
  task: str
  unit: str
  command: Optional[float] = None
  command_note: Optional[str] = None
  step: Optional[float] = None
  step_note: Optional[str] = None
  command_compile: Optional[float] = None
  command_compile_note: Optional[str] = None
  step_compile: Optional[float] = None
  comment: str = ""

  @property
  def fraction(self) -> Optional[float]:
    if self.command is None or not self.step:
      return None
    return self.command / self.step

  def cells(self) -> list[str]:
    num = lambda v, note, fmt="{:,.1f}": fmt.format(v) if v is not None else (note or NA)
    fraction = self.fraction
    verdict = "" if fraction is None else (" ok" if fraction >= TARGET else " below")
    return [self.task, self.unit, num(self.command, self.command_note), num(self.step, self.step_note),
            (f"{100 * fraction:.1f}%{verdict}" if fraction is not None else NA), f"{100 * TARGET:.0f}%",
            num(self.command_compile, self.command_compile_note),
            num(self.step_compile, None), self.comment]


HEADER = ["task", "unit", "command", "step only", "fraction", "target", "compile s (command)",
          "compile s (step)", "what"]


def markdown(rows: list[Row]) -> str:
  lines = ["| " + " | ".join(HEADER) + " |", "| " + " | ".join(["---"] * 2 + ["---:"] * 6 + ["---"]) + " |"]
  lines += ["| " + " | ".join(r.cells()) + " |" for r in rows]
  return "\n".join(lines)


def text_table(rows: list[Row]) -> str:
  cells = [HEADER] + [r.cells() for r in rows]
  widths = [max(len(c[i]) for c in cells) for i in range(len(HEADER) - 1)]
  return "\n".join("  ".join(c[i].ljust(widths[i]) for i in range(len(widths))) + "  " + c[-1]
                   for c in cells)


def write_outputs(out_dir: str, rows: list[Row], header: str, commands: list[Command], extra: dict) -> None:
  """e2e.json and e2e.md in `out_dir` (rewritten after each phase, so a stopped run keeps its part)."""
  if not out_dir:
    return
  os.makedirs(out_dir, exist_ok=True)
  payload = {"header": header, "target": TARGET,
             "rows": [dict(dataclasses.asdict(r), fraction=r.fraction) for r in rows],
             "commands": [{"name": c.name, "status": c.status(), "seconds": c.seconds} for c in commands],
             **extra}
  with open(os.path.join(out_dir, "e2e.json"), "w") as f:
    json.dump(payload, f, indent=2)
  with open(os.path.join(out_dir, "e2e.md"), "w") as f:
    f.write(f"{header}\n\n{markdown(rows)}\n\n")
    f.write("| command | status | seconds |\n| --- | --- | ---: |\n")
    f.write("".join(f"| {c.name} | {c.status()} | {c.seconds:.1f} |\n" for c in commands))


# ------------------------------------------------------------------------ main


def _guarded(what: str, fn, *args):
  """fn(*args), or None with the error printed: one broken figure must not lose the others."""
  try:
    return fn(*args)
  except Exception as e:  # pylint: disable=broad-except
    print(f"step-only {what} failed: {type(e).__name__}: {str(e)[:500]}", flush=True)
    return None


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--tiny", action="store_true", help="tiny CLIP and data, for a CPU check")
  parser.add_argument("--root", default=None, help="workdirs, data and CLIP (default: /tmp/bench_e2e[_tiny])")
  parser.add_argument("--clip_dir", default=None, help="an existing CLIP to use instead of writing one")
  parser.add_argument("--out", default=os.environ.get("OUT", ""), help="where e2e.json and e2e.md go")
  parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
  parser.add_argument("--budget_s", type=float, default=520.0,
                      help="seconds for the whole run; commands' limits are cut to fit it")
  args = parser.parse_args(argv)
  s = TINY if args.tiny else FULL
  began = time.monotonic()
  left = lambda: args.budget_s - (time.monotonic() - began)
  root = os.path.abspath(args.root or ("/tmp/bench_e2e_tiny" if args.tiny else "/tmp/bench_e2e"))
  data_dir = os.path.join(root, "tensorflow_datasets")  # kept between runs: prepared once
  clip_dir = os.path.abspath(args.clip_dir or os.path.join(root, "vit_b_32" if s.vit_b_32 else "tiny_clip"))
  shutil.rmtree(os.path.join(root, "work"), ignore_errors=True)  # fresh runs: nothing resumes
  os.makedirs(os.path.join(root, "work"), exist_ok=True)
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO_ROOT, env.get("PYTHONPATH", "")) if p)
  env["PYTHONUNBUFFERED"] = "1"
  clip_name = "ViT-B/32 towers, random weights" if s.vit_b_32 else "tiny CLIP"
  header = (f"end-to-end ({'tiny' if args.tiny else 'full'}) | {clip_name} | {s.dtype} | "
            f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC")
  print(header, flush=True)

  # 1. Set-up.
  commands = setup(s, root, data_dir, clip_dir, env, min(s.limits["setup"], left()))
  if not all(c.ok for c in commands):
    print("set-up failed: no command can run", flush=True)
    write_outputs(args.out, [], header, commands, {})
    return [], commands

  # 2. The commands, one at a time, the GPU theirs.
  configs = task_configs(s, clip_dir, data_dir)
  ran = {}
  reserve = sum(STEP_ONLY_RESERVE[task] for task in args.tasks)
  for task in args.tasks:
    spec, overrides = configs[task]
    workdir = os.path.join(root, "work", task)
    limit = min(s.limits[task], max(30.0, left() - reserve))
    if limit < s.limits[task]:
      print(f"--- {task}: its limit cut from {s.limits[task]} to {limit:.0f} s by --budget_s", flush=True)
    assert_no_backend()
    command = run_command(task, cli(spec, workdir, overrides), os.path.join(root, f"{task}.log"), limit, env,
                          watch=os.path.join(workdir, "metrics.jsonl") if task == "pretrain" else None)
    show(command)
    commands.append(command)
    ran[task] = (command, workdir)

  rows = command_rows(s, ran)
  print("\n" + text_table(rows), flush=True)
  write_outputs(args.out, rows, header, commands, {})

  # 3. The step alone, for the same settings, in this process.
  import jax  # pylint: disable=g-import-not-at-top
  from bench.lib import device as device_lib  # pylint: disable=g-import-not-at-top
  header += f" | {device_lib.describe()}"
  print(f"\nstep-only figures on {device_lib.describe()}", flush=True)

  def fill(row_names, result, key=None):
    """Puts a step-only result into its rows; saves the table (a stopped run keeps what it had)."""
    for row in rows:
      if row.task in row_names:
        part = result and (result[key] if key else result)
        if part and part.get("rate") is not None:
          row.step, row.step_compile = part["rate"], part["compile_s"]
        else:
          row.step_note = f"{NA} (step-only failed)" if result is None else f"{NA} (out of time)"
    write_outputs(args.out, rows, header, commands, {})

  def when_time(what, fn, *a):
    if left() < 15:
      print(f"step-only {what}: skipped, out of time", flush=True)
      return {}
    return _guarded(what, fn, *a)

  if "pretrain" in ran:
    fill({"pretrain steps", "pretrain window"}, when_time("pretrain", step_pretrain, s, args.tiny))
  if "zeroshot" in ran:
    zs = when_time("zeroshot", step_zeroshot, s, args.tiny, s.zeroshot_batch)
    fill({"zeroshot"}, zs)
    if s.library_batch != s.zeroshot_batch:
      zs = when_time("zeroshot at the library's batch", step_zeroshot, s, args.tiny, s.library_batch)
    fill({"zeroshot, library"}, zs)
    library = when_time("library path", library_zeroshot, s, clip_dir)
    for row in rows:
      if row.task == "zeroshot, library":
        if library and library.get("rate") is not None:
          row.command, row.command_note = library["rate"], None
          row.command_compile, row.command_compile_note = library["compile_s"], None
        else:
          row.command_note = f"{NA} (library path failed)" if library is None else f"{NA} (out of time)"
  if "fewshot" in ran:
    config = load_config(*configs["fewshot"])
    fs = when_time("fewshot", step_fewshot, s, config, 8 * (s.a_train or 64))  # set A's training clouds
    fill({"fewshot caching train", "fewshot caching test"}, fs, "caching")
    fill({"fewshot training"}, fs, "training")
  if "detect" in ran:
    fill({"detect"}, when_time("detect", step_detect, s, load_config(*configs["detect"])))
  del jax

  print(f"\n{header}\n" + text_table(rows), flush=True)
  print(f"\nfraction: command / step only (target {100 * TARGET:.0f}%). pretrain steps: the run's "
        f"interval samples/s (samples over seconds); pretrain window: wall clock from step "
        f"{s.log_every} to {s.pretrain_steps} with the evaluation and checkpoint at step "
        f"{s.pretrain_steps // 2} inside. zeroshot, library: the README's snippet at batch "
        f"{s.library_batch} (numpy points) against the step at that batch. Step only: back to back "
        f"after compiling. {time.monotonic() - began:.0f} s in all.", flush=True)
  print("\n".join(f"  {c.name}: {c.status()}, {c.seconds:.1f} s" for c in commands))
  write_outputs(args.out, rows, header, commands, {"seconds": time.monotonic() - began})
  return rows, commands


def command_rows(s: Sizes, ran: dict) -> list[Row]:
  """The table's rows with what each command wrote (step-only figures filled in later)."""
  rows = []
  if "pretrain" in ran:
    command, _ = ran["pretrain"]
    p = pretrain_figures(command, s.pretrain_batch)
    window = (f"steps {p['window_steps'][0]}-{p['window_steps'][1]}, {p['evals_inside']} evaluation(s) "
              "and checkpoint inside" if p["window_steps"] else "")
    rows.append(Row("pretrain steps", "samples/s", p["steps"], p["steps_note"] or _failed(command),
                    command_compile=p["compile_s"], command_compile_note=p["compile_note"],
                    comment=f"batch {s.pretrain_batch}, interval records"))
    rows.append(Row("pretrain window", "samples/s", p["window"], p["window_note"] or _failed(command),
                    command_compile=p["compile_s"], command_compile_note=p["compile_note"], comment=window))
  if "zeroshot" in ran:
    command, workdir = ran["zeroshot"]
    metrics = _read_json(os.path.join(workdir, "metrics.json"))
    rate, note = _get(metrics, "clouds_per_second") if metrics else (None, f"{NA} (no metrics.json)")
    compile_s, compile_note = _get(metrics, "compile_seconds") if metrics else (None, note)
    count = (metrics or {}).get("num_examples")
    rows.append(Row("zeroshot", "clouds/s", rate, _failed(command) or note, command_compile=compile_s,
                    command_compile_note=compile_note,
                    comment=f"batch {s.zeroshot_batch}, {count if count else '?'} test clouds"))
    rows.append(Row("zeroshot, library", "clouds/s", comment=f"README snippet, batch {s.library_batch}"))
  if "fewshot" in ran:
    command, workdir = ran["fewshot"]
    f = fewshot_figures(_read_json(os.path.join(workdir, "metrics.json")))
    for split in ("train", "test"):
      (rate, note), (compile_s, compile_note) = f[f"cache_{split}"], f[f"cache_{split}_compile"]
      rows.append(Row(f"fewshot caching {split}", "clouds/s", rate, _failed(command) or note,
                      command_compile=compile_s,
                      command_compile_note=compile_note, comment=f"batch {s.encode_batch}, 10 views"))
    (rate, note), (compile_s, compile_note) = f["epochs"], f["train_compile"]
    rows.append(Row("fewshot training", "epochs/s", rate, _failed(command) or note, command_compile=compile_s,
                    command_compile_note=compile_note,
                    comment=f"{s.shots}-shot x 8 classes, {s.fewshot_epochs} epochs"))
  if "detect" in ran:
    command, workdir = ran["detect"]
    metrics = _read_json(os.path.join(workdir, "metrics.json"))
    rate, note = _get(metrics, "crops_per_second") if metrics else (None, f"{NA} (no metrics.json)")
    compile_s, compile_note = _get(metrics, "compile_seconds") if metrics else (None, note)
    scenes, scenes_note = _get(metrics, "scenes_per_second") if metrics else (None, note)
    what = f"{scenes:.1f} scenes/s" if scenes is not None else f"scenes/s {scenes_note}"
    rows.append(Row("detect", "crops/s", rate, _failed(command) or note, command_compile=compile_s,
                    command_compile_note=compile_note,
                    comment=f"batch {s.detect_batch}, {what}"))
  return rows


def _failed(command: Command) -> Optional[str]:
  """"n/a (<task> exit 1)" for a command that failed or timed out (what it wrote may be partial)."""
  return None if command.ok else f"{NA} ({command.name} {command.status()})"


if __name__ == "__main__":
  main()
