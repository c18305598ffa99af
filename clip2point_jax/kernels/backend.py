"""Where the kernels run: the one check for a GPU.

The Pallas kernels compile with Triton on GPUs and run in Pallas's interpreter
elsewhere (CPU tests); `dispatch.resolve` picks them by default only on GPUs.
"""

import jax


def on_gpu() -> bool:
  """Whether jax's default backend is a GPU (where the Pallas kernels compile)."""
  return jax.default_backend() == "gpu"


def interpret() -> bool:
  """`pallas_call`'s `interpret`: the Pallas interpreter wherever Triton is absent."""
  return not on_gpu()
