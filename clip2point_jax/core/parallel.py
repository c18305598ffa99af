"""Device mesh and shardings for data parallelism over devices and hosts."""

import itertools
from typing import Callable, TypeVar

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from orbax.checkpoint import multihost as orbax_multihost

from clip2point_jax.core.rules import match_rules

DATA_AXIS = "data"
HOST_WAIT_MINUTES = 60  # How long a host waits for the others at a barrier.
T = TypeVar("T")
_ROUNDS = itertools.count()  # Hosts pass the same barriers in the same order: their ids agree.


def is_host0() -> bool:
  """Whether this process writes the run's shared files and prints its results."""
  return jax.process_index() == 0


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh over all devices (of all hosts), named `DATA_AXIS`, host by host.

  Each host's devices (1 per GPU process; 4 or 8 chips per TPU host) hold one
  contiguous block of the batch axis, in host order: the block of the batch
  `pipeline.host_slice` gives that host. A global array's rows then follow
  the pipeline's example order, which `concat_to_host` (feature caches,
  predictions) relies on. `jax.devices()` promises no such order on a pod.
  """
  devices = jax.devices() if devices is None else devices
  ordered = sorted(np.asarray(devices).reshape(-1), key=lambda d: (d.process_index, d.id))
  return Mesh(np.asarray(ordered), (DATA_AXIS,))


def data_sharding(mesh: Mesh) -> NamedSharding:
  """Shards the leading (batch) axis over the data axis; other axes whole."""
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  """Every device holds the whole array (parameters, text features)."""
  return NamedSharding(mesh, P())


def global_batch(mesh: Mesh, local_batch):
  """Builds global arrays from this host's slice of a batch.

  Loops call it through `data.pipeline.prefetch_to_device`, which runs it
  ahead of the step in a background thread (the transfer is asynchronous).

  Args:
    mesh: the data mesh.
    local_batch: pytree of numpy arrays whose leading axis is this host's
      share, `global_batch_size // jax.process_count()`.

  Returns:
    The same pytree of `jax.Array`s, sharded over the data axis.
  """
  sharding = data_sharding(mesh)
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)),
      local_batch)


def concat_to_host(arrays) -> np.ndarray:
  """Global arrays [n_i, ...] (batches' outputs kept on the devices) joined
  along axis 0 as one numpy array, on every host. One collective for all of
  them when they span several hosts: every host must call it."""
  gathered = multihost_utils.process_allgather(list(arrays), tiled=True)
  return np.concatenate([np.asarray(x) for x in gathered])


def wait_for_previous(outputs: list) -> None:
  """Blocks until the batch before the last one in `outputs` is computed.

  A loop that keeps its outputs on the device would otherwise run ahead of
  the device: its bar would reach 100% at once, then sit silent while the
  queue drains. The last batch stays queued, so the device never idles.
  """
  if len(outputs) > 1:
    jax.block_until_ready(outputs[-2])


def round_to_devices(batch_size: int, mesh: Mesh) -> int:
  """The smallest multiple of the mesh's device count that is >= batch_size."""
  n = mesh.devices.size
  return max(n, -(-batch_size // n) * n)


def param_shardings(mesh: Mesh, params, rules=()):
  """A `NamedSharding` per parameter from (regex, partition spec) rules.

  Args:
    mesh: the mesh.
    params: a parameter pytree (arrays or `jax.ShapeDtypeStruct`s).
    rules: (regex, spec) pairs, first fullmatch of the "a/b/c" path wins; a
      spec is a tuple of mesh axis names or None per array axis, e.g.
      `("kernel$", (None, "data"))`. Unmatched parameters are replicated.

  Returns:
    A tree of `NamedSharding` shaped like `params`.
  """
  specs = match_rules(params, [(p, P(*s)) for p, s in rules], P(), "sharding rules")
  # Leaves are PartitionSpecs; tuples (optimiser states are namedtuples) stay nodes.
  return jax.tree.map(lambda spec: NamedSharding(mesh, spec), specs,
                      is_leaf=lambda x: isinstance(x, P))


def _coordination_client():
  return orbax_multihost.get_jax_distributed_client()


def wait_for_hosts(what: str) -> None:
  """Waits until every host gets here: a barrier in JAX's coordination service.

  No device collective is involved, so one host may take minutes (reading
  every record, preparing the built-in data) while the others wait; the
  first collective of a CPU run gives up after 30 s.
  """
  if jax.process_count() > 1:
    _coordination_client().wait_at_barrier(f"clip2point/{next(_ROUNDS)}/{what}",
                                           HOST_WAIT_MINUTES * 60_000)


def any_process(flag: bool) -> bool:
  """True on every process if `flag` is True on any; every process must call it.

  Hosts decide together whether to build a cache: a host that found one
  written a moment ago by host 0 would otherwise skip the collectives the
  others wait in.
  """
  if jax.process_count() == 1:
    return bool(flag)
  client, key = _coordination_client(), f"clip2point/{next(_ROUNDS)}/any"
  client.key_value_set(f"{key}/{jax.process_index()}", "1" if flag else "0")
  return any(client.blocking_key_value_get(f"{key}/{i}", HOST_WAIT_MINUTES * 60_000) == "1"
             for i in range(jax.process_count()))


def host0_first(make: Callable[[], T], what: str) -> T:
  """`make()` on host 0, then on the other hosts once host 0 is done.

  For idempotent steps that write into a folder the hosts may share
  (preparing the built-in data, writing a tiny CLIP): two hosts writing one
  folder at once collide, so host 0 writes first and the others then find
  its result, or make their own copy where the file system is not shared.
  """
  if jax.process_count() == 1:
    return make()
  result = make() if is_host0() else None
  wait_for_hosts(what)
  return result if is_host0() else make()
