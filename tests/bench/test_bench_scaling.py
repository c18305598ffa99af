"""bench/bench_scaling.py on fake CPU devices: it runs, and its first-step losses agree.

One test drives 8 devices from one process; the other runs one process per
device (`--processes`: jax.distributed on this host, gloo collectives).
"""

import os
import re
import subprocess
import sys

from tests.conftest import REPO_ROOT


_TINY = ["--tiny", "--batch", "16", "--repeats", "1", "--image_size", "32", "--points", "64"]


def _run(*flags):
  # As bench/run_device.sh runs the scripts: from the repository root, on PYTHONPATH.
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=os.pathsep.join(
      [REPO_ROOT, os.environ.get("PYTHONPATH", "")]),
             XLA_FLAGS="--xla_force_host_platform_device_count=8 --xla_backend_optimization_level=0")
  proc = subprocess.run([sys.executable, "bench/bench_scaling.py", *_TINY, *flags],
                        env=env, capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
  assert proc.returncode == 0, proc.stdout + proc.stderr
  return proc.stdout


def _pretrain_rows(table, counts):
  pretrain = re.findall(r"^pretrain step\s+(\d+)\s+16 .* ([\d.]+) ([+-][\d.e+-]+)$", table, re.M)
  assert [n for n, _, _ in pretrain] == counts, table
  assert float(pretrain[0][1]) > 0 and all(abs(float(d)) < 1e-4 for _, _, d in pretrain), table
  return pretrain


def test_scaling_table_has_every_device_count_and_matching_first_losses():
  table = _run("--devices", "1", "8", "--zeroshot_batch", "2").split("\n\n")[-1]
  _pretrain_rows(table, ["1", "8"])
  zero_shot = re.findall(r"^zero-shot\s+(\d+)\s+(\d+) ", table, re.M)
  assert zero_shot == [("1", "2"), ("8", "16")], table


def test_one_process_per_device_gives_the_same_first_loss():
  out = _run("--devices", "1", "2", "--skip_zeroshot", "--processes")
  assert "one process per device" in out.splitlines()[0], out
  _pretrain_rows(out.split("\n\n")[-1], ["1", "2"])
