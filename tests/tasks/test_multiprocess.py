"""Tasks in two processes (jax.distributed on CPU, gloo) equal one process with two devices.

Each runs the CLI as two hosts would, sharing the workdir and the data
folder, with nothing prepared or cached yet: the hosts also prepare the
built-in data and build the stored-points and image-feature caches together.
"""

import json
import os
import subprocess
import sys

import jax
import numpy as np

from clip2point_jax.loading import depth_encoder
from clip2point_jax.tools import make_tiny_clip
from tests.conftest import FAST_COMPILE, REPO_ROOT, run_in_processes
from tests.tasks import pretrain_fixtures as pf

STEPS = 8


def _cli(workdir: str, config: str, overrides: list[str], *extra: str) -> list[str]:
  return [sys.executable, "-m", "clip2point_jax.main", "--config", config, "--workdir", workdir,
          *extra, *overrides]


def _as_two_hosts(workdir: str, config: str, overrides: list[str]) -> None:
  run_in_processes(lambda rank, coordinator: _cli(
      workdir, config, overrides, "--distributed", f"--coordinator_address={coordinator}",
      "--num_processes=2", f"--process_id={rank}"), timeout=400)


def _as_one_host_with_two_devices(workdir: str, config: str, overrides: list[str]) -> None:
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"--xla_force_host_platform_device_count=2 {FAST_COMPILE}")
  env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
  proc = subprocess.run(_cli(workdir, config, overrides), cwd=REPO_ROOT, capture_output=True,
                        text=True, timeout=400, env=env)
  assert proc.returncode == 0, proc.stdout + proc.stderr


def _logged(workdir: str) -> list[dict]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    records = [json.loads(line) for line in f]
  return [{k: v for k, v in r.items() if "second" not in k} for r in records
          if "loss" in r or "val_top1" in r]


def test_pretraining_in_two_processes(tmp_path):
  data_dir = pf.prepare(str(tmp_path / "shapenet"))
  clip_dir = make_tiny_clip.write_tiny_clip(
      str(tmp_path / "clip64"), vision_config={"image_size": 64, "patch_size": 16,
                                               "num_hidden_layers": 1},
      text_config={"num_hidden_layers": 1})
  fields = {"clip.name": clip_dir, "clip.dtype": "float32", "data.name": "shapenet55",
            "data.data_dir": data_dir, "data.num_points": 128, "batch_size": 8,
            "evals.val.data.name": "shapenet55", "evals.val.data.data_dir": data_dir,
            "evals.val.data.num_points": 128, "evals.val.batch_size": 8,
            "evals.downstream.data.name": "", "num_steps": STEPS, "log_every": 4,
            "checkpoint.every_steps": 4, "image_cache.dtype": "float32"}
  overrides = [f"--config.{k}={v}" for k, v in fields.items()]
  two_hosts, one_host = str(tmp_path / "two_hosts"), str(tmp_path / "one_host")
  _as_two_hosts(two_hosts, "configs/pretrain.py:tiny", overrides)  # Builds the caches.
  _as_one_host_with_two_devices(one_host, "configs/pretrain.py:tiny", overrides)

  logged, reference = _logged(two_hosts), _logged(one_host)
  assert [r["step"] for r in logged if "loss" in r] == [4, 8] and any("val_top1" in r for r in logged)
  assert [sorted(r) for r in logged] == [sorted(r) for r in reference]
  for got_record, want_record in zip(logged, reference):
    for key, value in want_record.items():
      np.testing.assert_allclose(got_record[key], value, rtol=1e-6, err_msg=f"{key}: {got_record}")
  (got, got_w), (want, want_w) = (
      depth_encoder.read_encoder(os.path.join(w, "checkpoints", str(STEPS))) for w in (two_hosts, one_host))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), got, want)
  assert got_w == want_w != 1.0


def test_zeroshot_in_two_processes_on_the_built_in_shapes(tmp_path, tiny_clip_dir):
  overrides = [f"--config.data.data_dir={tmp_path / 'tfds'}", f"--config.clip.name={tiny_clip_dir}"]
  config = "configs/zeroshot.py:dataset=primitives,tiny"
  two_hosts, one_host = str(tmp_path / "two_hosts"), str(tmp_path / "one_host")
  _as_two_hosts(two_hosts, config, overrides)  # Host 0 prepares the shapes; host 1 then reads them.
  _as_one_host_with_two_devices(one_host, config, overrides)
  results = []
  for workdir in (two_hosts, one_host):
    with open(os.path.join(workdir, "metrics.json")) as f:
      results.append({k: v for k, v in json.load(f).items() if "second" not in k})  # timings differ
  assert results[0]["num_examples"] == 16 and results[0] == results[1]
