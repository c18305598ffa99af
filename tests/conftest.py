"""Shared fixtures: tiny Hugging Face CLIP checkpoints, fake-device and multi-process runners."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap

# Tests run on the CPU even where a GPU is present, so numbers are comparable.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

# One persistent compilation cache for the whole test session: the xdist
# workers and every subprocess (fake-device runs, CLI commands, hosts of a
# multi-process run) inherit the variables, so a program compiled by one is
# loaded by the others. Set before JAX is imported (JAX reads them then). Its
# key covers the program, XLA_FLAGS, the devices and the compile options, so
# it only saves time. A cache the caller names is used as it is; a fresh one
# is removed at the end of the session (`pytest_unconfigure`).
_SESSION_CACHE = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _SESSION_CACHE = tempfile.mkdtemp(prefix="clip2point_jax_compilation_cache_")
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _SESSION_CACHE
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")

import pytest  # noqa: E402


def pytest_unconfigure(config):  # pylint: disable=unused-argument
  if _SESSION_CACHE is not None:
    shutil.rmtree(_SESSION_CACHE, ignore_errors=True)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What main at a89c44e wrote (tests/fixtures/make_legacy_a89c44e.py): the compatibility fixtures.
LEGACY_DIR = os.path.join(REPO_ROOT, "tests", "fixtures", "legacy_a89c44e")


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory):
  """A random tiny CLIP in exact Hugging Face format (config, safetensors, tokenizer)."""
  from clip2point_jax.tools import make_tiny_clip

  out = tmp_path_factory.mktemp("tiny_clip")
  make_tiny_clip.write_tiny_clip(str(out), seed=0)
  return str(out)


def task_config(name: str, arg=None):
  """`configs/<name>.py`'s `get_config(arg)`, loaded by path as the CLI loads it."""
  from clip2point_jax.core.config_args import load_sibling

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


# XLA:CPU compiles about three times faster without LLVM's optimisations; for
# subprocess tests that compare one run against another under the same flags.
FAST_COMPILE = "--xla_backend_optimization_level=0"


def run_in_processes(argv_of_rank, num_processes: int = 2, timeout: int = 300,
                     devices_per_process: int = 1) -> list[str]:
  """Runs `argv_of_rank(rank, coordinator)` as `num_processes` jax.distributed CPU hosts.

  Each process has `devices_per_process` CPU devices (a TPU host has 4 or 8
  chips) and gloo collectives. A host left waiting in a collective its peer
  never joins is killed at `timeout`.

  Returns:
    Each process's output; raises AssertionError with them if any failed.
  """
  with socket.socket() as s:
    s.bind(("localhost", 0))
    coordinator = f"localhost:{s.getsockname()[1]}"
  env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_CPU_COLLECTIVES_IMPLEMENTATION="gloo",
             XLA_FLAGS=f"{FAST_COMPILE} --xla_force_host_platform_device_count={devices_per_process}")
  env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
  # Files, not pipes: a host blocked on a full pipe nobody reads would hang the other.
  logs = [tempfile.TemporaryFile("w+") for _ in range(num_processes)]
  processes = [subprocess.Popen(argv_of_rank(rank, coordinator), env=env, cwd=REPO_ROOT,
                                stdout=log, stderr=subprocess.STDOUT, text=True)
               for rank, log in enumerate(logs)]
  try:
    processes[0].wait(timeout=timeout)
    for process in processes[1:]:
      process.wait(timeout=30)
  except subprocess.TimeoutExpired:
    pass  # Its output says where it waited.
  for process in processes:
    process.kill()
    process.wait()
  outputs = []
  for log in logs:
    log.seek(0)
    outputs.append(log.read())
    log.close()
  for rank, (process, output) in enumerate(zip(processes, outputs)):
    assert process.returncode == 0, f"process {rank} of {num_processes} failed:\n{output}"
  return outputs


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


def leaf_stats(tree, prefix: str) -> dict:
  """{prefix/path: float64[6]: sum, sum of squares, first 4 values} per leaf of `tree`.

  How tests/fixtures/make_legacy_a89c44e.py recorded a89c44e's updated
  parameters, so today's can be compared with them.
  """
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  out = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    a = np.asarray(leaf, np.float64).ravel()
    name = prefix + "/" + "/".join(str(getattr(k, "key", k)) for k in path)
    out[name] = np.concatenate([[a.sum(), (a * a).sum()], a[:4], np.zeros(max(0, 4 - a.size))])
  return out
