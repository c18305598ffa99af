"""The package's import direction: each layer imports only the layers below it.

    core (and errors) <- data, kernels <- models <- loading, projection, features
      <- training, detection <- validation, tasks, tools <- main

Siblings of one layer may import each other; no task imports another (the
demo runs the others); `renderers/` imports nothing of clip2point_jax.
Function-level imports count: they are imports all the same.
"""

import ast
import os

import pytest

from tests.conftest import REPO_ROOT

PACKAGE = "clip2point_jax"
RANK = {"errors": 0, "core": 0, "data": 1, "kernels": 1, "models": 2, "loading": 3,
        "projection": 3, "features": 3, "training": 4, "detection": 4, "validation": 5, "tasks": 5,
        "tools": 5, "main": 6}
# Tasks that run other tasks end to end.
TASKS_THAT_RUN_TASKS = {"demo"}


def imported_modules(source: str, module: str) -> list[str]:
  """Every clip2point_jax module `source` imports (dotted names), relative imports resolved."""
  found = []
  package = module.split(".")[:-1]
  for node in ast.walk(ast.parse(source)):
    if isinstance(node, ast.Import):
      found += [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
      # `from pkg import name` may import a submodule: record both readings.
      found += [base] + [f"{base}.{a.name}" for a in node.names]
  return [m for m in found if m == PACKAGE or m.startswith(PACKAGE + ".")]


def layer(module: str):
  """The layer name of a clip2point_jax module, or None for the package itself."""
  parts = module.split(".")
  return parts[1] if len(parts) > 1 else None


def violations(module: str, source: str) -> list[str]:
  """What `module`'s imports break, one line each."""
  own = layer(module)
  found = []
  for target in imported_modules(source, module):
    other = layer(target)
    if other is None or other not in RANK or own not in RANK:
      continue
    if RANK[other] > RANK[own]:
      found.append(f"{module} ({own}) imports {target} ({other}), a layer above it")
    if own == other == "tasks" and target.split(".")[2:3] != module.split(".")[2:3]:
      if module.split(".")[2] not in TASKS_THAT_RUN_TASKS and len(target.split(".")) > 2:
        found.append(f"{module} imports the task {target}")
  return sorted(set(found))


def _sources(top: str):
  for root, _, files in os.walk(os.path.join(REPO_ROOT, top)):
    for name in sorted(files):
      if name.endswith(".py"):
        path = os.path.join(root, name)
        rel = os.path.relpath(path, REPO_ROOT)[:-3].replace(os.sep, ".")
        yield rel.removesuffix(".__init__"), open(path).read()


def test_every_module_imports_only_layers_below_it():
  modules = dict(_sources(PACKAGE))
  assert len(modules) > 50
  unranked = sorted({layer(m) for m in modules} - set(RANK) - {None})
  assert not unranked, f"packages without a layer (add them to RANK): {unranked}"
  problems = [line for module, source in modules.items() for line in violations(module, source)]
  assert not problems, "\n".join(problems)


def test_renderers_import_nothing_of_the_package():
  for module, source in _sources("renderers"):
    assert not imported_modules(source, module), f"{module} imports clip2point_jax"


@pytest.mark.parametrize("module, source, expected", [
    ("clip2point_jax.models.gdpa", "from clip2point_jax.training import optim\n",
     "clip2point_jax.models.gdpa (models) imports clip2point_jax.training.optim (training)"),
    ("clip2point_jax.core.parallel", "def f():\n  import clip2point_jax.loading.hf_clip\n",
     "clip2point_jax.core.parallel (core) imports clip2point_jax.loading.hf_clip (loading)"),
    ("clip2point_jax.tasks.pretrain", "from clip2point_jax.tasks import zeroshot\n",
     "clip2point_jax.tasks.pretrain imports the task clip2point_jax.tasks.zeroshot"),
    ("clip2point_jax.loading.hf_clip", "from ..training import optim\n",
     "clip2point_jax.loading.hf_clip (loading) imports clip2point_jax.training (training)"),
])
def test_the_check_catches_an_upward_import(module, source, expected):
  assert any(line.startswith(expected) for line in violations(module, source)), violations(module, source)


def test_the_check_allows_downward_sibling_and_demo_imports():
  assert not violations("clip2point_jax.training.gdpa", "from clip2point_jax.models import gdpa\n")
  assert not violations("clip2point_jax.projection.encode", "from clip2point_jax.loading import hf_clip\n")
  assert not violations("clip2point_jax.tasks.demo", "from clip2point_jax.tasks import fewshot\n")
