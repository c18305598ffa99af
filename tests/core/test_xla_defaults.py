"""The CLI's XLA flags: added before jax starts, never over a flag the user set."""

import os

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
