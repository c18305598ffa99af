"""The GPU XLA flags of the CLI and the library: added before jax starts, never over a flag the user set."""

import os
import subprocess
import sys

from clip2point_jax.core import xla_defaults


def test_adds_every_default_to_empty_flags(monkeypatch):
  monkeypatch.delenv("XLA_FLAGS", raising=False)
  xla_defaults.apply()
  assert sorted(os.environ["XLA_FLAGS"].split()) == sorted(xla_defaults.DEFAULT_FLAGS)


def test_user_flags_win_and_stay(monkeypatch):
  monkeypatch.setenv("XLA_FLAGS", "--xla_gpu_enable_command_buffer=FUSION --xla_dump_to=/tmp/d")
  xla_defaults.apply()
  flags = os.environ["XLA_FLAGS"].split()
  assert "--xla_gpu_enable_command_buffer=FUSION" in flags and "--xla_dump_to=/tmp/d" in flags
  assert "--xla_gpu_enable_command_buffer=" not in flags
  assert "--xla_gpu_enable_triton_gemm=false" in flags
  xla_defaults.apply()  # Idempotent: nothing added twice.
  assert os.environ["XLA_FLAGS"].split() == flags


def _flags_after(code: str, **env) -> str:
  """XLA_FLAGS as a fresh interpreter sees them after running `code`."""
  environ = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", xla_defaults.OPT_OUT)}
  out = subprocess.run([sys.executable, "-c", code + "\nimport os; print(os.environ.get('XLA_FLAGS', ''))"],
                       env={**environ, **env}, capture_output=True, text=True, check=True)
  return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""


def test_importing_the_package_applies_them_for_library_users():
  assert sorted(_flags_after("import clip2point_jax").split()) == sorted(xla_defaults.DEFAULT_FLAGS)
  # jax imported first but not started: still in time.
  assert sorted(_flags_after("import jax; import clip2point_jax").split()) == sorted(xla_defaults.DEFAULT_FLAGS)
  user = _flags_after("import clip2point_jax", XLA_FLAGS="--xla_gpu_enable_triton_gemm=true").split()
  assert "--xla_gpu_enable_triton_gemm=true" in user and "--xla_gpu_enable_triton_gemm=false" not in user
  assert _flags_after("import clip2point_jax", **{xla_defaults.OPT_OUT: "0"}) == ""


def test_a_started_backend_keeps_its_flags():
  # Too late to matter: XLA read its flags when the CPU backend started (no warning off a GPU).
  code = ("import warnings, jax; jax.numpy.zeros(1).block_until_ready(); "
          "warnings.simplefilter('error'); import clip2point_jax")
  assert _flags_after(code) == ""
