"""A small numpy input pipeline over a random-access source, host-sharded.

Every host runs the same index arithmetic and reads only its own contiguous
slice of each global batch, which is what `parallel.global_batch` expects.
`prefetch_to_device` reads and transfers them ahead of the step, in a
background thread, and `map_batches` runs a jitted function over a whole
evaluation pass, its outputs gathered at the end:

    for batch in pipeline.prefetch_to_device(pipeline.batches(
        source, global_batch_size=64, num_points=1024, training=False), mesh):
      ...  # batch: global jax.Arrays, sharded over the data axis

Training batches are shuffled per epoch from (seed, epoch) and drop the last
partial batch, so every step has the full global batch. Evaluation batches
follow the source's order once, and the last one is padded with repeats that
`mask` marks False.
"""

import itertools
import queue
import threading
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

import jax
import numpy as np

from clip2point_jax.core import parallel, progress, throughput
from clip2point_jax.data import fps
from clip2point_jax.errors import UserError

SAMPLINGS = ("first", "fps")


def num_batches(num_examples: int, global_batch_size: int,
                training: bool) -> int:
  """Batches per epoch: training drops the remainder, evaluation pads it."""
  if training:
    return num_examples // global_batch_size
  return -(-num_examples // global_batch_size)


def eval_batch_size(requested: int, num_examples: int, devices: int) -> int:
  """An evaluation batch no larger than the data: min(requested, num_examples), rounded up to `devices`.

  Evaluation pads its last batch, so a batch beyond the data only costs
  memory (and, far beyond, an out-of-memory error).
  """
  size = max(1, min(requested, num_examples))
  return -(-size // devices) * devices


def epoch_order(num_examples: int, seed: int, epoch: int) -> np.ndarray:
  """The shuffled example order of one training epoch: int64[num_examples]."""
  return np.random.default_rng([seed, epoch]).permutation(num_examples)


def global_indices(num_examples: int, global_batch_size: int, *,
                   training: bool, seed: int = 0,
                   start_step: int = 0) -> Iterator[np.ndarray]:
  """Example indices of each global batch: int64[global_batch_size].

  Evaluation pads the last batch with -1. Training runs forever, epoch after
  epoch; `start_step` resumes mid-stream (e.g. after a checkpoint).
  """
  if not training:
    padded = np.full(num_batches(num_examples, global_batch_size, False)
                     * global_batch_size, -1, np.int64)
    padded[:num_examples] = np.arange(num_examples)
    yield from padded.reshape(-1, global_batch_size)
    return
  per_epoch = num_batches(num_examples, global_batch_size, True)
  epoch, skip = divmod(start_step, per_epoch)
  for e in itertools.count(epoch):
    order = epoch_order(num_examples, seed, e)
    for b in range(skip, per_epoch):
      yield order[b * global_batch_size:(b + 1) * global_batch_size]
    skip = 0


def host_slice(indices: np.ndarray, process_index: int,
               process_count: int) -> np.ndarray:
  """This host's contiguous share of a global batch's indices."""
  local = len(indices) // process_count
  return indices[process_index * local:(process_index + 1) * local]


def subsample(points: np.ndarray, num_points: int, sampling: str) -> np.ndarray:
  """float32[b, S, 3] -> float32[b, N, 3]: the first N, or N by FPS."""
  if sampling == "first":
    return points[:, :num_points]
  return fps.farthest_point_sample(points, num_points)


def normalize(points: np.ndarray) -> np.ndarray:
  """Centres each cloud and scales it into the unit sphere (as CLIP2Point)."""
  centred = points - points.mean(axis=-2, keepdims=True)
  radius = np.linalg.norm(centred, axis=-1).max(axis=-1)
  radius = np.where(radius > 0, radius, 1.0)  # A one-point blob stays put.
  return (centred / radius[..., None, None]).astype(np.float32)


def read_examples(source, indices: Sequence[int]) -> list[dict[str, Any]]:
  """`[source[i] for i in indices]`, in one batched read where the source has one."""
  if hasattr(source, "__getitems__"):  # One batched read (array_record).
    return list(source.__getitems__([int(i) for i in indices]))
  return [source[int(i)] for i in indices]


def batches(source, *, global_batch_size: int, num_points: int,
            training: bool, seed: int = 0, start_step: int = 0,
            num_steps: Optional[int] = None, sampling: str = "first",
            normalize_points: bool = True,
            process_index: Optional[int] = None,
            process_count: Optional[int] = None) -> Iterator[dict]:
  """This host's batches over `source`.

  Args:
    source: random access (`len`, `source[i]`) to dicts with "points"
      float32[S, 3] and "label"; e.g. from `registry.load_split`.
    global_batch_size: examples per step over all hosts.
    num_points: N <= S points per cloud.
    training: shuffle per epoch and repeat forever (until `num_steps`), or
      one ordered, padded pass.
    seed: the shuffling seed (training).
    start_step: training steps already taken, to resume the same stream.
    num_steps: stop after this many batches (default: forever in training,
      one pass in evaluation).
    sampling: "first" takes the first N stored points (every builder stores
      them so that this is a uniform or FPS subset); "fps" runs FPS here.
    normalize_points: centre and scale each cloud into the unit sphere.
    process_index, process_count: this host and the host count (default:
      JAX's).

  Yields:
    {"points": float32[b, N, 3], "label": int32[b], "mask": bool[b]} with
    b = global_batch_size // process_count; `mask` is False on padding.
  """
  process_index = (jax.process_index() if process_index is None
                   else process_index)
  process_count = (jax.process_count() if process_count is None
                   else process_count)
  n = len(source)
  if global_batch_size <= 0 or global_batch_size % process_count:
    raise UserError(f"batch size {global_batch_size} must be a positive "
                    f"multiple of the {process_count} hosts.")
  if sampling not in SAMPLINGS:
    raise UserError(f"sampling {sampling!r}; use one of {', '.join(SAMPLINGS)}.")
  if not n:
    raise UserError("the dataset split is empty.")
  if training and n < global_batch_size:
    raise UserError(f"the split has {n} examples, fewer than the batch size "
                    f"{global_batch_size}; lower the batch size.")
  stored = np.shape(source[0]["points"])[0]
  if not 0 < num_points <= stored:
    raise UserError(f"num_points={num_points}, but the dataset stores "
                    f"{stored} points per cloud; prepare it again with "
                    f"num_points_stored >= {num_points}.")
  stream = global_indices(n, global_batch_size, training=training, seed=seed,
                          start_step=start_step)
  for indices in itertools.islice(stream, num_steps):
    local = host_slice(indices, process_index, process_count)
    mask = local >= 0
    examples = read_examples(source, np.where(mask, local, local % n))
    points = np.stack([np.asarray(e["points"], np.float32) for e in examples])
    points = subsample(points, num_points, sampling)
    yield {
        "points": normalize(points) if normalize_points else points,
        "label": np.asarray([e["label"] for e in examples], np.int32),
        "mask": mask,
    }


class _Failure:

  def __init__(self, error: BaseException):
    self.error = error


def prefetch(iterable: Iterable[Any], size: int = 2) -> Iterator[Any]:
  """Produces `iterable` in a background thread, up to `size` ahead.

  Reading and decoding then overlap with the device step. Errors reach the
  consumer; an abandoned iterator leaves a daemon thread waiting.
  """
  items = queue.Queue(maxsize=size)
  end = object()

  def produce():
    try:
      for item in iterable:
        items.put(item)
      items.put(end)
    except BaseException as e:  # pylint: disable=broad-except
      items.put(_Failure(e))

  threading.Thread(target=produce, daemon=True).start()
  while (item := items.get()) is not end:
    if isinstance(item, _Failure):
      raise item.error
    yield item


def prefetch_to_device(iterable: Iterable[Any], mesh, size: int = 2) -> Iterator[Any]:
  """This host's batches of `iterable` as global arrays on `mesh`, built `size` ahead.

  A background thread reads each batch and starts its host-to-device
  transfer (`parallel.global_batch`: each host gives its local share), so
  neither reading nor copying sits between two steps. JAX's transfers are
  asynchronous and may start from any thread. Up to `size` batches wait on
  the devices (and one more in the making): `size` bounds the memory they take.

  Args:
    iterable: pytrees of numpy arrays, this host's share of each global batch
      (e.g. `batches`).
    mesh: the data mesh.
    size: batches built ahead of the consumer.

  Yields:
    The same pytrees of `jax.Array`s, sharded over the data axis. An error
    of the producer (reading or transferring) is raised here, as it was.
  """
  return prefetch((parallel.global_batch(mesh, local) for local in iterable), size)


def map_batches(fn: Callable[[Any], Any], batches: Iterable[Any], *, total: int, desc: str,
                counts: Callable[[int], dict[str, int]]) -> tuple[Any, throughput.Timer]:
  """`fn` over every batch of a pass, its outputs kept on the devices until the end.

  Fetching each batch's output would stall the dispatch queue; instead the
  loop waits only for the output before the last (`parallel.wait_for_previous`),
  so the bar moves with the device and one batch always stays queued. The
  first call is timed apart (`throughput.Timer`).

  Args:
    fn: `batch -> pytree of global jax.Array[b, ...]`; dispatches, need not wait.
    batches: device batches, e.g. from `prefetch_to_device`.
    total: the number of batches, for the bar.
    desc: the bar's label.
    counts: `batch index -> what that batch counts`, e.g. {"clouds": 32}
      (leave the padding out).

  Returns:
    (the outputs' pytree, each leaf joined along axis 0 as numpy on every
    host: [sum of b, ...]; the pass's timer, its last lap closed).
  """
  outputs = []
  timer = throughput.Timer()
  for i, batch in enumerate(progress.progress(iterable=batches, desc=desc, unit="batch", total=total)):
    outputs.append(timer.call(fn, batch, **counts(i)))
    parallel.wait_for_previous(outputs)
  if not outputs:
    raise ValueError(f"{desc}: no batches")
  timer.lap(outputs[-1])
  leaves = [jax.tree.leaves(o) for o in outputs]
  joined = [parallel.concat_to_host(leaf[j] for leaf in leaves) for j in range(len(leaves[0]))]
  return jax.tree.unflatten(jax.tree.structure(outputs[0]), joined), timer
