"""Field meanings read from config files' comments (what --help prints)."""

import os
import textwrap

import pytest

from clip2point_jax.core import config_doc
from clip2point_jax.validation.fields import leaves
from tests.conftest import REPO_ROOT, task_config

CONFIGS = sorted(n[:-3] for n in os.listdir(os.path.join(REPO_ROOT, "configs"))
                 if n.endswith(".py") and n != "common.py")


def _write(folder, name, source):
  path = folder / f"{name}.py"
  path.write_text(textwrap.dedent(source))
  return str(path)


def test_comments_beside_above_in_helpers_and_in_other_configs(tmp_path):
  _write(tmp_path, "shared", '''
      def block():
        b = object()
        b.size = 3  # how big
        return b
      ''')
  _write(tmp_path, "base", '''
      shared = load_sibling(__file__, "shared")
      def get_config(arg=None):
        c = object()
        # The learning rate
        # of the adapter.
        c.lr = 1e-3
        c.inner = shared.block()
        c.model = object()
        c.model.depth = 2  # layers
        if arg:
          c.lr = 1.0  # a preset's reason, not the meaning
        return c
      ''')
  path = _write(tmp_path, "top", '''
      base = load_sibling(__file__, "base")
      def get_config(arg=None):
        trained = base.get_config()
        c = base.get_config("x")
        c.model = trained.model
        c.own = 1  # its own field
        return c
      ''')
  docs = config_doc.field_docs(path)
  assert docs == {"own": "its own field", "lr": "The learning rate of the adapter.",
                  "inner.size": "how big", "model.depth": "layers"}
  assert config_doc.meaning(docs, "evals.x.model.depth") == "layers"
  assert config_doc.meaning(docs, "unknown") == ""
  assert config_doc.one_line("First. Second.") == "First"
  assert config_doc.one_line("x" * 200).endswith("...")


@pytest.mark.parametrize("name", CONFIGS)
def test_every_field_of_every_config_has_a_meaning(name):
  path = os.path.join(REPO_ROOT, "configs", f"{name}.py")
  docs = config_doc.folder_docs(path)
  missing = [f for f, _ in leaves(task_config(name)) if not config_doc.meaning(docs, f)]
  assert not missing, f"configs/{name}.py: add a comment to {missing}"


def test_describe_lists_every_field_with_value_and_meaning():
  text = config_doc.describe(task_config("zeroshot", "tiny"), os.path.join(REPO_ROOT, "configs", "zeroshot.py"))
  rows = {line.split()[0]: line for line in text.splitlines()}
  assert set(rows) == {f for f, _ in leaves(task_config("zeroshot", "tiny"))}
  assert "'hard'" in rows["render.mode"] and "z-buffer" in rows["render.mode"]
