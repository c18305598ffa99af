"""A config's fields with their one-line meanings, read from the config files' comments.

The config files document each field where it is set (`c.batch_size = 32  #
clouds per step`, or a comment block just above); blocks built by helpers
(`c.clip = common.clip_config()`) are documented inside those helpers, in the
file itself or a sibling loaded with `load_sibling(__file__, "common")`. So
`--help` needs no second copy of the documentation to keep in step.
"""

import ast
import io
import os
import tokenize
from typing import Any, Optional


def _comments(source: str) -> dict[int, str]:
  """{line number: comment text} of every comment."""
  found = {}
  for token in tokenize.generate_tokens(io.StringIO(source).readline):
    if token.type == tokenize.COMMENT:
      found[token.start[0]] = token.string.lstrip("#").strip()
  return found


def _attribute_path(node) -> Optional[tuple[str, str]]:
  """`c.a.b` -> ("c", "a.b"); None for anything else."""
  parts = []
  while isinstance(node, ast.Attribute):
    parts.append(node.attr)
    node = node.value
  if isinstance(node, ast.Subscript) or not isinstance(node, ast.Name) or not parts:
    return None
  return node.id, ".".join(reversed(parts))


def _comment_for(node, comments: dict[int, str], lines: list[str]) -> str:
  trailing = [comments[n] for n in range(node.lineno, node.end_lineno + 1) if n in comments]
  if trailing:
    return " ".join(trailing)
  above, n = [], node.lineno - 1
  while n in comments and lines[n - 1].lstrip().startswith("#"):
    above.insert(0, comments[n])
    n -= 1
  return " ".join(above)


class _File:
  """One config file: per function, {relative field path: comment} and the blocks it builds."""

  def __init__(self, path: str):
    self.path = path
    source = open(path).read()
    comments, lines = _comments(source), source.splitlines()
    tree = ast.parse(source)
    self.siblings = {}  # alias -> sibling file name, from `x = load_sibling(__file__, "x")`
    for node in tree.body:
      if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
          and getattr(node.value.func, "id", "") == "load_sibling" and len(node.value.args) == 2
          and isinstance(node.value.args[1], ast.Constant)):
        self.siblings[node.targets[0].id] = node.value.args[1].value
    # {function: {field: (priority, comment)}}; lower wins. Priority 2 for
    # fields set inside an `if` (a preset's change, whose comment says why
    # it changed), so a block helper's meaning (1) beats it.
    self.docs: dict[str, dict[str, tuple[int, str]]] = {}
    # {function: {field: (module alias or None, function, field of its result)}}:
    # fields whose value another function builds; "" for the whole config.
    self.blocks: dict[str, dict[str, tuple[Optional[str], str, str]]] = {}
    for function in [n for n in tree.body if isinstance(n, ast.FunctionDef)]:
      docs, blocks = self.docs.setdefault(function.name, {}), self.blocks.setdefault(function.name, {})
      top_level = {id(n) for n in function.body}
      calls = {}  # local name -> the (alias, function) call it was assigned from
      for node in ast.walk(function):
        if not isinstance(node, ast.Assign) or len(node.targets) != 1:
          continue
        source = _call_of(node.value)
        if isinstance(node.targets[0], ast.Name):
          if source:
            calls[node.targets[0].id] = source
          continue
        target = _attribute_path(node.targets[0])
        if target is None:
          continue
        field = target[1]
        priority = 0 if id(node) in top_level else 2
        doc = _comment_for(node, comments, lines)
        if doc and (field not in docs or docs[field][0] > priority):
          docs[field] = (priority, doc)
        if source:
          blocks.setdefault(field, source + ("",))
        else:
          # `c.model = trained.model` where `trained = fewshot.get_config()`.
          taken = _attribute_path(node.value)
          if taken and taken[0] in calls:
            blocks.setdefault(field, calls[taken[0]] + (taken[1],))
      # `c = zeroshot.get_config(...); ...; return c`: the config builds on another.
      returned = [n.value.id for n in function.body
                  if isinstance(n, ast.Return) and isinstance(n.value, ast.Name)]
      if returned and returned[0] in calls:
        blocks.setdefault("", calls[returned[0]] + ("",))


def _call_of(node) -> Optional[tuple[Optional[str], str]]:
  """`f(...)` -> (None, "f"); `module.f(...)` -> ("module", "f"); else None."""
  if not isinstance(node, ast.Call):
    return None
  if isinstance(node.func, ast.Name):
    return None, node.func.id
  if isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name):
    return node.func.value.id, node.func.attr
  return None


def field_docs(config_file: str, function: str = "get_config") -> dict[str, str]:
  """{dotted field: one-line meaning} for the config `config_file` builds."""
  files: dict[str, _File] = {}

  def load(path):
    if path not in files:
      files[path] = _File(path)
    return files[path]

  def collect(path: str, func: str, prefix: str, out: dict, depth: int = 0):
    f = load(path)
    for field, (priority, doc) in f.docs.get(func, {}).items():
      if prefix + field not in out or out[prefix + field][0] > priority:
        out[prefix + field] = (priority, doc)
    if depth > 4:
      return
    for field, (alias, name, taken) in f.blocks.get(func, {}).items():
      target = path if alias is None else (
          os.path.join(os.path.dirname(path), f.siblings[alias] + ".py") if alias in f.siblings else None)
      if not (target and os.path.isfile(target) and name in load(target).docs):
        continue
      inner: dict[str, tuple[int, str]] = {}
      collect(target, name, "", inner, depth + 1)
      base = f"{prefix}{field}." if field else prefix
      for key, (priority, doc) in inner.items():
        if taken and not key.startswith(taken + "."):
          continue
        key = key[len(taken) + 1:] if taken else key
        # The builder's documentation ranks below the including file's own.
        if base + key not in out or out[base + key][0] > priority + 1:
          out[base + key] = (priority + 1, doc)

  out: dict[str, tuple[int, str]] = {}
  collect(os.path.abspath(config_file), function, "", out)
  return {field: doc for field, (_, doc) in out.items()}


def folder_docs(config_file: str) -> dict[str, str]:
  """`field_docs` of `config_file`, then, for fields it leaves undocumented,
  of the other configs beside it: a field means the same in every task."""
  folder = os.path.dirname(os.path.abspath(config_file))
  docs = field_docs(config_file)
  for name in sorted(os.listdir(folder)):
    other = os.path.join(folder, name)
    if name.endswith(".py") and other != os.path.abspath(config_file):
      try:
        for field, doc in field_docs(other).items():
          docs.setdefault(field, doc)
      except (OSError, SyntaxError, ValueError):
        continue  # A broken neighbour must not break --help.
  return docs


def one_line(doc: str, width: int = 100) -> str:
  """The first sentence of a comment, at most `width` characters."""
  sentence = doc.split(". ")[0].rstrip(".")
  return sentence if len(sentence) <= width else sentence[:width - 3] + "..."


def meaning(docs: dict[str, str], path: str) -> str:
  """The documented meaning of `path`: its own, else its longest documented
  suffix's (`evals.val.data.name` reads as `data.name`), else that of a field
  it is the suffix of (`prompts` reads as `evals.val.prompts`): the blocks
  repeat fields."""
  parts = path.split(".")
  for start in range(len(parts)):
    doc = docs.get(".".join(parts[start:]))
    if doc:
      return doc
  longer = sorted((k for k in docs if k.endswith("." + path) and docs[k]), key=len)
  return docs[longer[0]] if longer else ""


def _short(value: Any, width: int = 40) -> str:
  text = repr(value)
  return text if len(text) <= width else text[:width - 3] + "..."


def describe(config, config_file: str) -> str:
  """Every field of `config` with its value and meaning, one per line."""
  docs = folder_docs(config_file)
  rows = []

  def walk(block, prefix):
    for key, value in block.items():
      if hasattr(value, "items"):
        walk(value, f"{prefix}{key}.")
      else:
        path = prefix + key
        rows.append((path, _short(value), one_line(meaning(docs, path))))

  walk(config, "")
  name_width = max(len(r[0]) for r in rows)
  value_width = max(len(r[1]) for r in rows)
  return "\n".join(f"  {p:<{name_width}}  {v:<{value_width}}  {d}".rstrip() for p, v, d in rows)
