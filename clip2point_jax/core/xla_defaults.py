"""XLA flags that make the project's models faster on GPUs, applied before jax starts.

Measured on an H200 (bench/RESULTS.md): with XLA's Triton GEMMs off, every
matmul of the CLIP encoder goes to cuBLAS with its bias fused into the
epilogue, which made zero-shot about 6% faster; with XLA's command buffers
(CUDA graphs) off, the pre-training step took 38.2 ms instead of 43.8 ms and
its step-to-step spread fell from 10 ms to 0.9 ms. A flag the user already set
in XLA_FLAGS wins. They have no effect on CPUs and TPUs.

The CLI applies them before it imports JAX; importing `clip2point_jax` applies
them too (`apply_on_import`), so a library user gets the same programs as the
CLI and the benchmarks, unless JAX already started its backends (then
nothing changes and a warning says so) or $CLIP2POINT_XLA_DEFAULTS is 0.
"""

import os
import sys
import warnings

DEFAULT_FLAGS = ("--xla_gpu_enable_triton_gemm=false", "--xla_gpu_enable_command_buffer=")
OPT_OUT = "CLIP2POINT_XLA_DEFAULTS"  # "0": leave XLA_FLAGS as the user set them.


def missing_flags(current: str) -> list[str]:
  """The `DEFAULT_FLAGS` whose names `current` (an XLA_FLAGS string) does not set."""
  names = {f.split("=")[0] for f in current.split()}
  return [f for f in DEFAULT_FLAGS if f.split("=")[0] not in names]


def apply():
  """Adds `DEFAULT_FLAGS` to $XLA_FLAGS unless the user set those flags. Call before jax starts."""
  current = os.environ.get("XLA_FLAGS", "")
  extra = missing_flags(current)
  if extra:
    os.environ["XLA_FLAGS"] = " ".join([current] + extra).strip()


def _backends_started() -> bool:
  if "jax" not in sys.modules:  # Not imported: nothing can have started.
    return False
  from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top
  return xla_bridge.backends_are_initialized()


def apply_on_import() -> None:
  """`apply()` for library users, when it can still take effect.

  XLA reads its flags once, when the first backend starts. A program that
  ran JAX before importing this package keeps its flags; it is warned only
  where a GPU is in use and a default is missing, since elsewhere the flags
  change nothing.
  """
  if os.environ.get(OPT_OUT, "1") == "0" or not missing_flags(os.environ.get("XLA_FLAGS", "")):
    return
  if not _backends_started():
    apply()
    return
  import jax  # pylint: disable=g-import-not-at-top
  if jax.default_backend() == "gpu":
    warnings.warn(
        "JAX started before clip2point_jax was imported, so the XLA flags that make its GPU "
        f"programs faster ({' '.join(DEFAULT_FLAGS)}) are not in effect: import clip2point_jax "
        f"first, or set them in XLA_FLAGS (or {OPT_OUT}=0 to silence this)", stacklevel=3)
