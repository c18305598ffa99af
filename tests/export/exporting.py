"""Exporting the project's jitted functions for TPUs and GPUs from the CPU, and what their modules hold.

    module = exporting.export("zero-shot", "tpu", build)   # build() -> (jitted fn, abstract args)
    exporting.assert_no_gpu_kernels(module)                  # AssertionError naming "zero-shot"

`build` runs under `backend.target(platform)`, so the model it loads gets
that platform's kernels (`kernels.dispatch.resolve`), and the function is
traced for it.

Meshes: TPU exports use an abstract mesh of 4 devices (`jax.sharding.
AbstractMesh`: no devices needed). A GPU export of a function that holds the
Pallas kernels uses this process's one CPU device instead: the kernels are
wrapped in `custom_partitioning` (`kernels/batch_parallel.py`), whose
partitioner is a Python callback, so jax refuses an abstract mesh for them
("primitives that require devices") and `jax.export` refuses to serialise
them over several devices ("serialization of host_callbacks is not yet
implemented"); on one device they lower to the kernels themselves.
"""

import collections
import dataclasses
import os
import re
import traceback
from typing import Callable

import jax
import numpy as np
from jax.sharding import AbstractMesh

from clip2point_jax.core import parallel
from clip2point_jax.kernels import backend

# The custom call of a Pallas kernel lowered by Triton (GPUs); its backend
# config names the kernel (`pallas_call`'s `name`).
TRITON = "__gpu$xla.gpu.triton"
# The custom call of a Pallas kernel lowered by Mosaic (TPUs): none is intended yet.
MOSAIC = "tpu_custom_call"
NUM_DEVICES = 4
# jax.export checks custom calls against a list of targets with stable
# serialisations; Triton's is not on it, and these tests read the module only.
_DISABLED = (jax.export.DisabledSafetyCheck.custom_call(TRITON),)


def abstract_mesh() -> AbstractMesh:
  """4 devices along the tasks' data axis (`parallel.DATA_AXIS`), none of them real."""
  return AbstractMesh((NUM_DEVICES,), (parallel.DATA_AXIS,))


def mesh_for(platform: str, pallas: bool):
  """The mesh a function is exported over: 4 abstract devices, or for a GPU
  function that holds the Pallas kernels this process's one device (module doc)."""
  if pallas and backend.canonical(platform) == "gpu":
    return parallel.make_mesh()
  return abstract_mesh()


def abstract(tree, sharding):
  """`jax.ShapeDtypeStruct`s of a tree of arrays (or shapes), each with `sharding`."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=sharding), tree)


def data_sharded(mesh, shape, dtype) -> jax.ShapeDtypeStruct:
  """An array of `shape` whose leading (batch) axis is split over the data axis."""
  return jax.ShapeDtypeStruct(shape, dtype, sharding=parallel.data_sharding(mesh))


@dataclasses.dataclass(frozen=True)
class Module:
  """An exported function's StableHLO module, as text, and what it is."""
  name: str
  platform: str
  text: str
  nr_devices: int

  @property
  def custom_calls(self) -> collections.Counter:
    """How often each custom-call target is called."""
    return collections.Counter(re.findall(r"stablehlo\.custom_call @([\w$.]+)", self.text))

  @property
  def triton_kernels(self) -> set[str]:
    """The names of the Triton kernels called (e.g. "forward_kernel")."""
    calls = [line for line in self.text.splitlines() if f"custom_call @{TRITON}(" in line]
    return {m for line in calls for m in re.findall(r'\bname = "(\w+)"', line)}

  def where(self) -> str:
    return f"{self.name} for {self.platform}"


def export(name: str, platform: str, build: Callable) -> Module:
  """`build()`'s jitted function exported for `platform`, built and traced for it.

  Args:
    name: what the function is, for messages.
    platform: jax.export's platform name, "tpu" or "cuda".
    build: `() -> (jitted function, its abstract arguments)`.

  Raises:
    AssertionError: naming the function and platform, if building or exporting fails.
  """
  with backend.target(platform):
    try:
      fn, args = build()
      exported = jax.export.export(fn, platforms=(platform,), disabled_checks=_DISABLED)(*args)
    except Exception as e:  # pylint: disable=broad-except
      raise AssertionError(f"{name}: export for {platform} failed: {_describe(e)}") from e
  return Module(name, platform, exported.mlir_module(), exported.nr_devices)


def _describe(error: Exception) -> str:
  """One line: the error's type, its first line and where it was raised (bare asserts say nothing)."""
  lines = str(error).strip().splitlines()
  frame = traceback.extract_tb(error.__traceback__)[-1]
  return (f"{type(error).__name__}: {lines[0] if lines else '(no message)'} "
          f"[{os.path.basename(frame.filename)}:{frame.lineno}]")


def gpu_kernels_in(text: str) -> list[str]:
  """What of the GPU kernels a module holds, one line each; empty: none.

  A Triton or Mosaic call, or a Pallas kernel traced into plain ops (Pallas's
  interpreter), found by the kernels' function names (`pallas_*`) in the
  module's source locations.
  """
  found = []
  calls = collections.Counter(re.findall(r"stablehlo\.custom_call @([\w$.]+)", text))
  if calls[TRITON]:
    found.append(f"{calls[TRITON]} Triton kernel call(s) ({TRITON})")
  if calls[MOSAIC]:
    found.append(f"{calls[MOSAIC]} Mosaic kernel call(s) ({MOSAIC})")
  traced = sorted(set(re.findall(r'loc\("(\w*pallas\w*)"', text)))
  if traced:
    found.append(f"Pallas kernels traced into its ops ({', '.join(traced)})")
  return found


def assert_no_gpu_kernels(module: Module) -> None:
  """AssertionError naming the function if its module holds any GPU kernel (`gpu_kernels_in`)."""
  found = gpu_kernels_in(module.text)
  assert not found, f"{module.where()}: the module holds " + "; ".join(found)


def data_parallel_tensors(module: Module) -> int:
  """How many of the module's shardings (of arguments and results, or constraints on
  values inside, as the GDPA's gathered batch) split a leading axis over the data axis."""
  return len(re.findall(r'<@\w+, \[\{"' + parallel.DATA_AXIS + '"', module.text))


def donated_arguments(module: Module) -> int:
  """How many of the module's arguments are donated (aliased to an output, or buffer donors)."""
  main = re.search(r"func\.func public @main\((.*?)\)\s*->", module.text, re.S).group(1)
  return len(re.findall(r"tf\.aliasing_output|jax\.buffer_donor", main))
