"""Shared fixtures: tiny Hugging Face CLIP checkpoints and a fake-device runner."""

import os
import subprocess
import sys
import textwrap

# Tests run on the CPU even where a GPU is present, so numbers are comparable.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pytest  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory):
  """A random tiny CLIP in exact Hugging Face format (config, safetensors, tokenizer)."""
  from clip2point_jax.tools import make_tiny_clip

  out = tmp_path_factory.mktemp("tiny_clip")
  make_tiny_clip.write_tiny_clip(str(out), seed=0)
  return str(out)


def task_config(name: str, arg=None):
  """`configs/<name>.py`'s `get_config(arg)`, loaded by path as the CLI loads it."""
  from clip2point_jax.config_args import load_sibling

  return load_sibling(os.path.join(REPO_ROOT, "configs", f"{name}.py"), name).get_config(arg)


def run_with_fake_devices(code: str, num_devices: int = 8, timeout: int = 300):
  """Runs `code` in a fresh python with `num_devices` fake CPU devices.

  XLA reads the device count once at start-up, so this needs its own process.
  Returns the CompletedProcess; raises AssertionError with its output on failure.
  """
  env = dict(os.environ)
  env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={num_devices}"
  env["JAX_PLATFORMS"] = "cpu"
  env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
  proc = subprocess.run(
      [sys.executable, "-c", textwrap.dedent(code)],
      env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT)
  assert proc.returncode == 0, f"subprocess failed:\n{proc.stdout}\n{proc.stderr}"
  return proc


def set_fields(config, **dotted):
  """Sets config fields named by dotted paths: `set_fields(c, **{"clip.dtype": "float32"})`."""
  with config.unlocked():
    for key, value in dotted.items():
      *parents, leaf = key.split(".")
      node = config
      for p in parents:
        node = node[p]
      node[leaf] = value
  return config
