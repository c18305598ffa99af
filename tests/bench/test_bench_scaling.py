"""bench/bench_scaling.py on 8 fake CPU devices: it runs, and its first-step losses agree."""

import os
import re
import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_scaling_table_has_every_device_count_and_matching_first_losses():
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=os.pathsep.join(
      [REPO_ROOT, os.path.join(REPO_ROOT, "bench"), os.environ.get("PYTHONPATH", "")]),
             XLA_FLAGS="--xla_force_host_platform_device_count=8 --xla_backend_optimization_level=0")
  proc = subprocess.run(
      [sys.executable, "bench/bench_scaling.py", "--tiny", "--devices", "1", "8", "--batch", "16",
       "--zeroshot_batch", "2", "--repeats", "1", "--image_size", "32", "--points", "64"],
      env=env, capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
  assert proc.returncode == 0, proc.stdout + proc.stderr
  table = proc.stdout.split("\n\n")[-1]
  pretrain = re.findall(r"^pretrain step\s+(\d+)\s+16 .* ([\d.]+) ([+-][\d.e+-]+)$", table, re.M)
  assert [n for n, _, _ in pretrain] == ["1", "8"], table
  assert float(pretrain[0][1]) > 0 and all(abs(float(d)) < 1e-4 for _, _, d in pretrain), table
  zero_shot = re.findall(r"^zero-shot\s+(\d+)\s+(\d+) ", table, re.M)
  assert zero_shot == [("1", "2"), ("8", "16")], table
