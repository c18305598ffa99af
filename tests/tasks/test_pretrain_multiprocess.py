"""Pre-training in two processes (jax.distributed on CPU, gloo) equals one process with two devices.

Both run the CLI on a tiny ShapeNet-55 release whose stored-points and
image-feature caches do not exist yet, so the hosts also build those
together; the final parameters, the logged losses and the validation
accuracy must agree.
"""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np

from clip2point_jax.models import depth_encoder
from clip2point_jax.tools import make_tiny_clip
from tests.conftest import REPO_ROOT
from tests.tasks import pretrain_fixtures as pf

STEPS = 8


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _overrides(data_dir: str, clip_dir: str) -> list[str]:
  fields = {"clip.name": clip_dir, "clip.dtype": "float32", "data.name": "shapenet55",
            "data.data_dir": data_dir, "data.num_points": 128, "batch_size": 8,
            "evals.val.data.name": "shapenet55", "evals.val.data.data_dir": data_dir,
            "evals.val.data.num_points": 128, "evals.val.batch_size": 8,
            "evals.downstream.data.name": "", "num_steps": STEPS, "log_every": 4,
            "checkpoint.every_steps": 4, "image_cache.dtype": "float32"}
  return [f"--config.{k}={v}" for k, v in fields.items()]


def _command(workdir: str, overrides: list[str], *extra: str) -> list[str]:
  return [sys.executable, "-m", "clip2point_jax.main", "--config", "configs/pretrain.py:tiny",
          "--workdir", workdir, *extra, *overrides]


def _env(**kw) -> dict:
  env = dict(os.environ, JAX_PLATFORMS="cpu", **kw)
  env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
  return env


def _losses(workdir: str) -> list[dict]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    records = [json.loads(line) for line in f]
  return [{k: v for k, v in r.items() if "second" not in k} for r in records
          if "loss" in r or "val_top1" in r]


def _run_two_processes(workdir: str, overrides: list[str]) -> None:
  coordinator = f"localhost:{_free_port()}"
  env = _env(JAX_CPU_COLLECTIVES_IMPLEMENTATION="gloo", XLA_FLAGS="")
  ranks = [subprocess.Popen(
      _command(workdir, overrides, "--distributed", f"--coordinator_address={coordinator}",
               "--num_processes=2", f"--process_id={rank}"),
      env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
           for rank in range(2)]
  outputs = [rank.communicate(timeout=400)[0] for rank in ranks]
  for rank, (process, output) in enumerate(zip(ranks, outputs)):
    assert process.returncode == 0, f"rank {rank}:\n{output}"


def test_two_processes_train_as_one_process_with_two_devices(tmp_path):
  data_dir = pf.prepare(str(tmp_path / "shapenet"))
  clip_dir = make_tiny_clip.write_tiny_clip(
      str(tmp_path / "clip64"), vision_config={"image_size": 64, "patch_size": 16,
                                               "num_hidden_layers": 1},
      text_config={"num_hidden_layers": 1})
  overrides = _overrides(data_dir, clip_dir)
  two_processes = str(tmp_path / "two_processes")
  _run_two_processes(two_processes, overrides)  # Builds the caches: neither host has them.

  one_process = str(tmp_path / "one_process")
  proc = subprocess.run(_command(one_process, overrides), cwd=REPO_ROOT, capture_output=True,
                        text=True, timeout=400,
                        env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=2"))
  assert proc.returncode == 0, proc.stdout + proc.stderr

  logged = _losses(two_processes)
  assert [r["step"] for r in logged if "loss" in r] == [4, 8] and any("val_top1" in r for r in logged)
  reference = _losses(one_process)
  assert [sorted(r) for r in logged] == [sorted(r) for r in reference]
  for got_record, want_record in zip(logged, reference):
    for key, value in want_record.items():
      np.testing.assert_allclose(got_record[key], value, rtol=1e-6, err_msg=f"{key}: {got_record}")
  (got, got_w), (want, want_w) = (
      depth_encoder.read_encoder(os.path.join(w, "checkpoints", str(STEPS)))
      for w in (two_processes, one_process))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), got, want)
  assert got_w == want_w != 1.0
