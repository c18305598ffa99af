"""The pre-training step's traced program in another tree of this project against this one's.

  python3 bench/compare_step_programs.py bench_out/a89c44e   # CPU is enough

Traces `bench/bench_pretrain.py`'s step in each tree (tiny shapes, bfloat16,
the GPU kernels: `--attention pallas`), in a subprocess each, and prints a
unified diff of the two jaxprs. Kernel launches and matmuls are the same
where the jaxprs are, so a timing gap between the trees on a GPU is noise
unless this shows a difference in what runs.
"""

import argparse
import difflib
import os
import subprocess
import sys
import tempfile

_TRACE = r"""
import argparse, os, sys
sys.path[:0] = [os.getcwd(), os.path.join(os.getcwd(), "bench")]
import jax
try:
  from bench import bench_pretrain as bp
except ImportError:  # older trees import their benches as top-level modules
  import bench_pretrain as bp
parser = argparse.ArgumentParser()
bp.add_model_args(parser)
args = parser.parse_args(["--tiny", "--attention", "pallas"])
bp.finish_model_args(args)
# Through bench_pretrain's own import: each tree has `parallel` where its bench found it.
step, state, frozen, inputs, cache, _ = bp.setup(args, "bfloat16", 8, bp.parallel.make_mesh())
open(sys.argv[1], "w").write(str(jax.make_jaxpr(step)(state, frozen, inputs[0], cache)))
"""


def trace(tree: str) -> list[str]:
  """The jaxpr of `tree`'s pre-training step, one line per equation."""
  with tempfile.NamedTemporaryFile("r", suffix=".txt") as out:
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=os.path.abspath(tree))
    subprocess.run([sys.executable, "-c", _TRACE, out.name], cwd=tree, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return out.read().splitlines()


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("other", help="the other tree, e.g. `git archive a89c44e | tar -x -C bench_out/a89c44e`")
  args = parser.parse_args()
  old, new = trace(args.other), trace(".")
  diff = list(difflib.unified_diff(old, new, args.other, "this tree", lineterm="", n=1))
  print("\n".join(diff))
  changed = sum(line[:1] in "+-" and line[:3] not in ("+++", "---") for line in diff)
  print(f"\n{len(old)} vs {len(new)} jaxpr lines; {changed} changed; "
        f"pallas_call {sum('pallas_call' in l for l in old)} vs {sum('pallas_call' in l for l in new)}")


if __name__ == "__main__":
  main()
