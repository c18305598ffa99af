"""Two processes (jax.distributed on CPU, gloo) agree on building a cache when only one host has it.

Each host has its own cache folder, as without a shared file system, and
only host 1's already holds each cache. Building one runs collectives, so
host 1 must join host 0 rather than return early: without
`parallel.any_process` host 0 waits in a collective host 1 never enters.
"""

import os
import socket
import subprocess
import sys

from tests.conftest import REPO_ROOT

_HOST = r"""
import os, sys
import jax
rank, root, coordinator = int(sys.argv[1]), sys.argv[2], sys.argv[3]
jax.distributed.initialize(coordinator_address=coordinator, num_processes=2, process_id=rank)
import numpy as np
from jax.experimental import multihost_utils
from clip2point_jax import feature_cache, image_features, parallel, view_features
from clip2point_jax.data import pretrain_data

assert parallel.any_process(rank == 1) and not parallel.any_process(False)
mine = os.path.join(root, f"host{rank}")

def collective_sum():  # What the real computations share: every host must join.
  return float(np.sum(multihost_utils.process_allgather(np.float32(rank + 1))))

# Image features (pre-training).
ident = {"dataset": "toy", "dtype": "float32"}
features = lambda value: {"features": np.full((3, 10, 4), value, np.float32),
                          "has_images": np.ones(3, bool)}
if rank == 1:
  feature_cache.save(os.path.join(mine, "image"), features(-1.0), ident)
got = image_features.load_or_compute(os.path.join(mine, "image"), ident,
                                     lambda: features(collective_sum()))
assert float(got["features"][0, 0, 0]) == (3.0 if rank == 0 else -1.0), got["features"][0, 0, 0]

# Per-view features (few-shot, classify).
identity = {"data": {"name": "toy"}, "split": "train"}
views = lambda value: {"clip": np.full((3, 10, 4), value, np.float32), "label": np.arange(3)}
if rank == 1:
  versioned = dict(identity, cache_version=view_features.CACHE_VERSION)
  feature_cache.save(view_features.cache_dir(os.path.join(mine, "views"), versioned), views(-1.0),
                     versioned)
got = view_features.load_or_compute(os.path.join(mine, "views"), identity,
                                    lambda: views(collective_sum()))
assert float(got["clip"][0, 0, 0]) == 3.0, got["clip"][0, 0, 0]  # Host 1 keeps what it computed.

# Stored points (pre-training): host 0 reads the records, then every host meets at a barrier.
source = [{"points": np.full((5, 3), i, np.float32), "has_images": True} for i in range(4)]
points_ident = {"dataset": "toy points"}
if rank == 1:
  feature_cache.save(os.path.join(mine, "points"), {"points": np.zeros((4, 5, 3), np.float32),
                                                     "has_images": np.ones(4, bool)}, points_ident)
points, _ = pretrain_data.stored_points(source, os.path.join(mine, "points"), points_ident)
assert float(points[3, 0, 0]) == (3.0 if rank == 0 else 0.0)
collective_sum()  # Both hosts reach the end together.
print("ok", rank)
"""


def test_hosts_build_a_cache_together_when_only_one_lacks_it(tmp_path):
  with socket.socket() as s:
    s.bind(("localhost", 0))
    coordinator = f"localhost:{s.getsockname()[1]}"
  env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_CPU_COLLECTIVES_IMPLEMENTATION="gloo", XLA_FLAGS="")
  env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
  hosts = [subprocess.Popen([sys.executable, "-c", _HOST, str(rank), str(tmp_path), coordinator],
                            env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True) for rank in range(2)]
  try:
    hosts[0].wait(timeout=90)
    hosts[1].wait(timeout=10)
  except subprocess.TimeoutExpired:
    pass  # A host waiting in a collective the other never joins: its output says where.
  for host in hosts:
    host.kill()
  outputs = [host.communicate()[0] for host in hosts]
  for rank, (host, output) in enumerate(zip(hosts, outputs)):
    assert host.returncode == 0 and f"ok {rank}" in output, f"host {rank}:\n{output}"
