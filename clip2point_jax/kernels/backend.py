"""The target platform: where the code being traced will run, and so which kernels it gets.

The target is jax's default backend, except inside `with target(platform):`,
which code that exports for another platform wraps around building and
exporting a function (tests/export exports for TPUs and GPUs from a CPU):

    with backend.target("tpu"):
      loaded = hf_clip.load_clip(name)        # clip.attention "auto" resolves for a TPU
      exported = jax.export.export(jax.jit(fn), platforms=("tpu",))(*args)

  "gpu" (also named "cuda" or "rocm"): the Triton Pallas kernels compile.
  "tpu": XLA's ops only; a Triton kernel refuses to be traced (`interpret`).
  "cpu": XLA's ops by default; Pallas kernels, named explicitly, run in
         Pallas's interpreter (the tests).

The target is read when code is traced. It is a jax user context, part of
jit's cache keys, so a function traced for one target is traced again for
another (with a jax too old for `jax.make_user_context`, build the function
under the target instead). The kernels' own cached ops are kept per target too.
"""

import contextlib
import contextvars

import jax

from clip2point_jax.errors import UserError

# jax's and jax.export's names for each target.
_ALIASES = {"cpu": "cpu", "gpu": "gpu", "cuda": "gpu", "rocm": "gpu", "tpu": "tpu"}


class _ContextVarTarget:
  """`jax.make_user_context`'s interface over a ContextVar, for older jax: not in jit's keys."""

  def __init__(self):
    self._var = contextvars.ContextVar("kernel_target", default=None)

  @property
  def value(self):
    return self._var.get()

  @contextlib.contextmanager
  def __call__(self, value):
    token = self._var.set(value)
    try:
      yield
    finally:
      self._var.reset(token)


# The target's canonical name; None: jax's default backend.
_TARGET = (jax.make_user_context(default_value=None) if hasattr(jax, "make_user_context")
           else _ContextVarTarget())


def canonical(platform: str) -> str:
  """"cpu", "gpu" or "tpu" for a platform as jax or jax.export names it ("cuda", "rocm", ...).

  Raises:
    UserError: a platform the kernels know nothing of.
  """
  if platform.lower() not in _ALIASES:
    raise UserError(f"kernel target platform {platform!r}; use one of {sorted(_ALIASES)}")
  return _ALIASES[platform.lower()]


@contextlib.contextmanager
def target(platform: str):
  """Within the block, kernels are chosen and traced for `platform` ("cpu", "cuda", "tpu", ...)."""
  with _TARGET(canonical(platform)):
    yield


def platform() -> str:
  """The target: "cpu", "gpu" or "tpu" (the innermost `target`, else jax's default backend)."""
  chosen = _TARGET.value
  return chosen if chosen is not None else _ALIASES.get(jax.default_backend(), jax.default_backend())


def on_gpu() -> bool:
  """Whether the target is a GPU (where the Triton Pallas kernels compile)."""
  return platform() == "gpu"


def on_tpu() -> bool:
  """Whether the target is a TPU (where only XLA's ops run)."""
  return platform() == "tpu"


def interpret(kernel: str = "a Triton Pallas kernel") -> bool:
  """`pallas_call`'s `interpret` for one of the Triton kernels here: False on GPUs (Triton
  compiles it), True elsewhere (Pallas's interpreter, for the CPU tests).

  Raises:
    UserError on a TPU target: Triton kernels do not lower for TPUs, and
    interpreted there they would run as slow serial loops. Named `kernel`.
  """
  if on_tpu():
    raise UserError(f"{kernel} is a Triton Pallas kernel, for GPUs, and cannot run on a TPU; "
                    "use XLA's ops (clip.attention 'auto' or 'xla')")
  return not on_gpu()
