"""Runs many command lines of `clip2point_jax.main` fast: one warm process, a fork per command.

    python tests/main_driver.py cases.json results.json

Each case is {"args": [...], "sandbox": DIR, "timeout": s}; each result holds
the exit status, stdout, stderr, whether it timed out and which files under
the sandbox changed. Importing JAX and the package once (not per command)
makes a table of 40 mistakes cost seconds instead of minutes; JAX starts no
backend on import, so forking afterwards is safe.
"""

import json
import os
import signal
import sys
import tempfile
import time
import traceback

# Run as a script, this file's folder comes first on sys.path: put the
# checkout's root before any installed copy of the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top,wrong-import-position

from clip2point_jax import main, validation  # pylint: disable=unused-import  (warm imports)


def snapshot(root: str) -> dict[str, tuple[int, int]]:
  """{relative path: (size, mtime_ns)} of every file and folder under `root`."""
  found = {}
  for folder, dirs, files in os.walk(root):
    for name in dirs + files:
      path = os.path.join(folder, name)
      stat = os.lstat(path)
      found[os.path.relpath(path, root)] = (stat.st_size, stat.st_mtime_ns)
  return found


def _child(args: list[str], out_path: str, err_path: str) -> None:
  out, err = os.open(out_path, os.O_WRONLY), os.open(err_path, os.O_WRONLY)
  os.dup2(out, 1)
  os.dup2(err, 2)
  code = 0
  # config_flags finds the --config.<field> overrides in sys.argv itself.
  sys.argv = ["clip2point_jax.main", *args]
  try:
    app.run(main.main, argv=sys.argv, flags_parser=main.parse_flags)
  except SystemExit as e:
    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
  except BaseException:  # pylint: disable=broad-except
    traceback.print_exc()
    code = 1
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(code)


def run_case(case: dict) -> dict:
  before = snapshot(case["sandbox"])
  with tempfile.NamedTemporaryFile(delete=False) as out, tempfile.NamedTemporaryFile(delete=False) as err:
    pass
  pid = os.fork()
  if pid == 0:
    _child(case["args"], out.name, err.name)
  deadline, status, timed_out = time.monotonic() + case.get("timeout", 60), None, False
  while status is None:
    done, code = os.waitpid(pid, os.WNOHANG)
    if done:
      status = os.waitstatus_to_exitcode(code)
    elif time.monotonic() > deadline:
      os.kill(pid, signal.SIGKILL)
      os.waitpid(pid, 0)
      status, timed_out = -9, True
    else:
      time.sleep(0.02)
  after = snapshot(case["sandbox"])
  changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
  result = {"status": status, "timed_out": timed_out, "changed": changed,
            "stdout": open(out.name).read(), "stderr": open(err.name).read()}
  os.unlink(out.name)
  os.unlink(err.name)
  return result


if __name__ == "__main__":
  with open(sys.argv[1]) as f:
    cases = json.load(f)
  results = [run_case(case) for case in cases]
  with open(sys.argv[2], "w") as f:
    json.dump(results, f)
