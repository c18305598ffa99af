"""`renderers` stands alone: `clip2point_jax` imports it, never the reverse."""

import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_renderers_import_nothing_from_clip2point_jax():
  code = ("import sys, renderers.cameras, renderers.points, renderers.errors\n"
          "import pkgutil, importlib, renderers\n"
          "for m in pkgutil.iter_modules(renderers.__path__):\n"
          "  importlib.import_module('renderers.' + m.name)\n"
          "bad = sorted(m for m in sys.modules if m.startswith('clip2point_jax'))\n"
          "assert not bad, bad\n")
  proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True)
  assert proc.returncode == 0, proc.stderr
