"""Two processes (jax.distributed on CPU, gloo): hosts agree on building caches and shared folders.

Each host has its own cache folder, as without a shared file system, and
only host 1's already holds each cache. Building one runs collectives, so
host 1 must join host 0 rather than return early: without
`parallel.any_process` host 0 waits in a collective host 1 never enters.
A folder both hosts write goes through `parallel.host0_first`. Outputs
sharded over both hosts are read back whole on each (`parallel.concat_to_host`).
"""

import sys

from tests.conftest import run_in_processes

_HOST = r"""
import os, sys
import jax
rank, root, coordinator = int(sys.argv[1]), sys.argv[2], sys.argv[3]
jax.distributed.initialize(coordinator_address=coordinator, num_processes=2, process_id=rank)
import numpy as np
from jax.experimental import multihost_utils
from clip2point_jax.core import feature_cache, parallel
from clip2point_jax.features import image_features, view_features
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
# A folder both hosts write (the built-in data, a tiny CLIP): host 0 first, then host 1 finds it.
shared = os.path.join(root, "shared.txt")

def write_once():
  if not os.path.exists(shared):
    with open(shared, "w") as f:
      f.write(str(rank))
  with open(shared) as f:
    return f.read()

assert parallel.host0_first(write_once, "shared file written") == "0"

# GDPA's test logits (few-shot, classify) come out sharded over both hosts; every host reads them all.
from clip2point_jax.training import gdpa as gdpa_training
mesh = parallel.make_mesh()
table = np.arange(12, dtype=np.float32).reshape(6, 2)
data = {"clip": jax.device_put(table, parallel.replicated(mesh))}
predict = jax.jit(lambda scale, text, data, indices: scale * data["clip"][indices] @ text.T,
                  out_shardings=parallel.data_sharding(mesh))
text = np.asarray([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32)
logits = gdpa_training.evaluate(predict, np.float32(2.0), text, data, np.arange(5), chunk=2)
np.testing.assert_allclose(logits, 2 * table[:5] @ text.T)
collective_sum()  # Both hosts reach the end together.
print("ok", rank)
"""


def test_hosts_build_a_cache_together_when_only_one_lacks_it(tmp_path):
  outputs = run_in_processes(lambda rank, coordinator: [sys.executable, "-c", _HOST, str(rank),
                                                        str(tmp_path), coordinator], timeout=90)
  assert all(f"ok {rank}" in output for rank, output in enumerate(outputs)), outputs


# A TPU host has 4 or 8 chips: two hosts of four devices each, as a v4-16 slice has.
_HOST_OF_FOUR = r"""
import os, sys
import jax
rank, root, coordinator = int(sys.argv[1]), sys.argv[2], sys.argv[3]
jax.distributed.initialize(coordinator_address=coordinator, num_processes=2, process_id=rank)
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from clip2point_jax.core import checkpoints, parallel
from clip2point_jax.data import pipeline
from clip2point_jax.training import loop
assert (jax.process_count(), jax.local_device_count(), jax.device_count()) == (2, 4, 8)

# Devices listed host by host alternately, as nothing promises jax.devices() won't be on a pod.
mixed = [d for pair in zip(jax.devices()[:4], jax.devices()[4:]) for d in pair]
assert len({d.process_index for d in mixed[:2]}) == 2
mesh = parallel.make_mesh(mixed)
assert [d.process_index for d in mesh.devices] == [0, 0, 0, 0, 1, 1, 1, 1]

# 13 examples, global batches of 8: each host reads its 4 (one per device) and the rows
# come back whole, in example order, on both hosts.
source = [{"points": np.full((2, 3), i, np.float32), "label": i} for i in range(13)]
same = jax.jit(lambda x: x, out_shardings=parallel.data_sharding(mesh))
batches = list(pipeline.batches(source, global_batch_size=8, num_points=2, training=False,
                                normalize_points=False))
assert all(len(b["label"]) == 4 for b in batches)
globals_ = [parallel.global_batch(mesh, b) for b in batches]
assert globals_[0]["points"].shape == (8, 2, 3)
labels = parallel.concat_to_host(same(g["label"]) for g in globals_)
mask = parallel.concat_to_host(same(g["mask"]) for g in globals_)
assert labels[mask].tolist() == list(range(13)), labels
mean = jax.jit(lambda g: jnp.sum(g["points"][:, 0, 0] * g["mask"]) / jnp.sum(g["mask"]))
assert float(mean(globals_[0])) == 3.5  # examples 0..7

# The order the mesh fixes matters: the devices as listed would put host 1's rows in
# between host 0's, and the rows would come back out of example order.
mixed_mesh = Mesh(np.asarray(mixed), ("data",))
interleaved = parallel.concat_to_host([parallel.global_batch(mixed_mesh, batches[0])["label"]])
assert interleaved.tolist() != list(range(8)), interleaved

# A checkpoint of arrays sharded over both hosts' eight devices, saved by both, restored by both.
state = {"rows": jax.device_put(np.arange(24, dtype=np.float32).reshape(8, 3), parallel.data_sharding(mesh)),
         "w": jax.device_put(np.float32(2.0), parallel.replicated(mesh)), "step": np.int32(5)}
ckpt = checkpoints.Checkpointer(os.path.join(root, "checkpoints"), keep=1)
ckpt.save(5, state, meta={"hosts": 2})
ckpt.close()
reopened = checkpoints.Checkpointer(os.path.join(root, "checkpoints"), keep=1)
restored, meta = reopened.restore(checkpoints.abstract_like(state))
reopened.close()
assert meta == {"hosts": 2} and int(restored["step"]) == 5
assert restored["rows"].sharding.is_equivalent_to(parallel.data_sharding(mesh), 2)
np.testing.assert_array_equal(parallel.concat_to_host([restored["rows"]]), np.arange(24).reshape(8, 3))
assert len(restored["rows"].addressable_shards) == 4  # this host's four devices, one row pair each

# Host 0 alone writes the metrics file; both keep the records.
parallel.wait_for_hosts("checkpoint read")
log = loop.MetricsLog(root, tensorboard=False)
log.write({"step": 1, "loss": 0.5})
parallel.wait_for_hosts("metrics written")
with open(os.path.join(root, loop.METRICS_FILE)) as f:
  assert f.read().count("step") == 1
assert log.records == [{"step": 1, "loss": 0.5}]
print("ok", rank)
"""


def test_hosts_of_four_devices_batch_checkpoint_and_write_once(tmp_path):
  outputs = run_in_processes(lambda rank, coordinator: [sys.executable, "-c", _HOST_OF_FOUR, str(rank),
                                                        str(tmp_path), coordinator],
                             timeout=120, devices_per_process=4)
  assert all(f"ok {rank}" in output for rank, output in enumerate(outputs)), outputs
