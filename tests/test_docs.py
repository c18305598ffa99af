"""README.md and docs/*.md: every shell command is run by a test or marked, every link resolves.

The convention, for whoever edits the docs:

* A fenced code block labelled ```sh (or bash, shell, console, zsh) whose
  commands need something the tests don't have is preceded, on the line right
  before its fence (blank lines between are allowed), by a marker naming it:

      <!-- needs: real data -->
      <!-- needs: real data, gpu, download -->

  Tags: `real data` (a downloaded dataset, checkpoint or your own files),
  `gpu`, `tpu` (a Cloud TPU VM), `cloud` (a Google Cloud project: gcloud, a
  bucket), `download` (the real CLIP from the Hub) and `several hosts`.
* Every command of an unmarked shell block must be in `RUN_BY` below, which
  names the test that runs it (with the tiny preset) and a string that test's
  source must contain, or `.ci/run` for the quick-start test command.
  Backslash continuations are joined, whitespace is collapsed, and comment
  lines and trailing `# comments` are ignored.
* Commands written inline (a code span starting like a command, e.g.
  `python -m ...`) follow the same rule; in a table with a `needs` column the
  row's cell is the marker (`–` or empty: nothing needed, so registered).
* A fenced block that is not labelled as shell (or python) must not hold shell
  commands: label it ```sh so the rules above apply.
* Relative links and images resolve to existing files, anchors to headings
  (GitHub's slugs); every docs/*.md page is linked from the README and every
  docs/*.png picture from some page.

This file only parses text: no JAX, nothing is run.
"""

import ast
import dataclasses
import glob
import os
import re

import pytest

from tests.conftest import REPO_ROOT

README = "README.md"
README_MAX_LINES = 300  # Issue #21: the README stays short; details live in docs/.
SHELL_LANGS = {"sh", "bash", "shell", "console", "zsh"}
NEEDS_TAGS = {"real data", "gpu", "tpu", "cloud", "download", "several hosts"}
NOTHING = {"", "-", "–", "—"}
CI_RUNNER = ".ci/run"
CI_MARKER = "<!-- quick-start: tests -->"

# Unmarked commands -> (the test that runs the same command, with the tiny
# preset where there is one; a string its source must contain), or
# (CI_RUNNER, None) for the command .ci/run extracts from the README.
RUN_BY = {
    "python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[dev]' && "
    "python -m pytest -q -n 2 --dist loadfile":
        (CI_RUNNER, None),
    "python3 -m venv .venv && . .venv/bin/activate && pip install -e . && "
    "python -m clip2point_jax.main --config configs/demo.py --workdir runs/demo":
        ("tests/tasks/test_demo.py::test_the_readme_demo_runs_and_prints_the_readmes_figures",
         '"configs/demo.py",'),
    "python -m clip2point_jax.main --config configs/demo.py --workdir runs/demo":
        ("tests/tasks/test_demo.py::test_the_readme_demo_runs_and_prints_the_readmes_figures",
         '"configs/demo.py",'),
    "python -m clip2point_jax.tools.make_tiny_clip /tmp/tiny_clip":
        ("tests/tools/test_make_tiny_clip.py::test_cli_writes_a_checkpoint", '"clip2point_jax.tools.make_tiny_clip"'),
    "python -m clip2point_jax.main --config configs/prepare.py:dataset=primitives "
    "--config.num_per_class_train=64 --config.num_per_class_test=16":
        ("tests/data/test_data_prepare_task.py::test_run_prepares_once", '"dataset=primitives,tiny"'),
    "python -m clip2point_jax.main --config configs/prepare.py:dataset=primitives,tiny":
        ("tests/data/test_data_prepare_task.py::test_run_prepares_once", '"dataset=primitives,tiny"'),
    "python -m clip2point_jax.main --config configs/visualize.py:dataset=primitives --workdir runs/vis":
        ("tests/tasks/test_visualize_task.py::test_figures_of_primitives", "visualize.run(_config()"),
    "python -m clip2point_jax.main --config configs/zeroshot.py:dataset=primitives,tiny --workdir runs/zs_tiny":
        ("tests/tasks/test_multiprocess.py::test_zeroshot_in_two_processes_on_the_built_in_shapes",
         '"configs/zeroshot.py:dataset=primitives,tiny"'),
    "python -m clip2point_jax.main --config configs/pretrain.py:tiny --workdir runs/pretrain_tiny":
        ("tests/tasks/test_pretrain_task.py::test_resume_after_a_kill_is_bit_identical", "pretrain.run(pf.tiny_config("),
    "python -m clip2point_jax.main --config configs/pretrain.py:tiny,encoder=point_transformer "
    "--workdir runs/pretrain_pt_tiny":
        ("tests/tasks/test_point_encoder_tasks.py::test_resume_after_a_kill_is_bit_identical",
         "pretrain.run(pf.tiny_config(data_dir, clip_dir, **no_evals), resumed)"),
    "python -m clip2point_jax.main --config configs/zeroshot.py:dataset=primitives,tiny "
    "--config.depth_encoder=runs/pretrain_pt_tiny --workdir runs/zs_pt_tiny":
        ("tests/tasks/test_point_encoder_tasks.py::test_zero_shot_classifies_with_one_feature_per_cloud",
         "zeroshot.run(config"),
    "python -m clip2point_jax.main --config configs/compare.py:dataset=primitives,tiny --workdir runs/compare_tiny":
        ("tests/tasks/test_compare_task.py::test_tiny_run_writes_the_table_and_the_figure",
         "compare.run(_tiny("),
    "python -m clip2point_jax.main --config configs/fewshot.py:dataset=primitives,tiny --workdir runs/fewshot_tiny":
        ("tests/tasks/test_fewshot_task.py::test_training_on_the_built_in_shapes_beats_chance", '"top1_accuracy"'),
    "python -m clip2point_jax.main --config configs/detect.py:dataset=synthetic --workdir runs/detect_synthetic":
        ("tests/tasks/test_detect_task.py::test_synthetic_preset_makes_its_scenes", '"synthetic_scenes"'),
    "python -m clip2point_jax.main --config configs/detect.py:dataset=synthetic "
    "--config.classifier.kind=gdpa --config.classifier.checkpoint=runs/fewshot_tiny --workdir runs/detect_gdpa":
        ("tests/tasks/test_fewshot_task.py::test_detection_with_the_trained_gdpa_and_with_a_depth_encoder",
         'classifier.kind = "gdpa"'),
    "python -m clip2point_jax.main --config configs/complexity.py --workdir runs/complexity":
        ("tests/tasks/test_complexity.py::test_tiny_report_has_four_consistent_rows", 'complexity.run(_config("tiny")'),
}

COMMAND_START = re.compile(
    r"^(\$\s|python3?\s|pip3?\s|bash\s|sh\s|srun\s|sbatch\s|gcloud\s|for\s|while\s|export\s|cd\s|"
    r"mkdir\s|tar\s|git\s|curl\s|wget\s|\.\s|\./|[A-Z_][A-Z0-9_]*=\S*\s)")
MARKER = re.compile(r"^<!--\s*needs:(.*?)-->$")
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")
CODE_SPAN = re.compile(r"(`+)((?:(?!\1)[^\n]|\n(?!\s*\n))+?)\1")
LINK = re.compile(r"!?\[(?:[^\]\n]|\n(?!\s*\n))*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def doc_paths() -> list[str]:
  """README.md and docs/*.md, relative to the repository."""
  docs = sorted(os.path.relpath(p, REPO_ROOT) for p in glob.glob(os.path.join(REPO_ROOT, "docs", "*.md")))
  return [README] + docs


def read(rel: str) -> str:
  with open(os.path.join(REPO_ROOT, rel), encoding="utf-8") as f:
    return f.read()


@dataclasses.dataclass
class Block:
  line: int  # 1-based line of the opening fence
  lang: str
  lines: list[str]
  needs: list[str] | None  # the tags of its marker; None: unmarked


def normalize(command: str) -> str:
  return " ".join(command.split())


def parse_needs(value: str) -> tuple[list[str], list[str]]:
  """A marker's or a table cell's tags -> (tags, unknown tags)."""
  tags = [t.strip().lower() for t in value.split(",") if t.strip()]
  return tags, [t for t in tags if t not in NEEDS_TAGS]


def split_blocks(text: str) -> tuple[list[Block], list[str], list[str]]:
  """Fenced blocks, the text with their lines blanked (line numbers kept), and marker problems."""
  lines = text.split("\n")
  blocks, prose, problems = [], list(lines), []
  i = 0
  while i < len(lines):
    m = FENCE.match(lines[i])
    if not m:
      i += 1
      continue
    fence, lang = m.group(2), (m.group(3).strip().split() or [""])[0].lower()
    j = i + 1
    while j < len(lines) and not (lines[j].strip().startswith(fence[0] * len(fence))
                                  and not lines[j].strip().strip(fence[0])):
      j += 1
    needs = None
    k = i - 1
    while k >= 0 and not lines[k].strip():
      k -= 1
    if k >= 0:
      marker = MARKER.match(lines[k].strip())
      if marker:
        needs, unknown = parse_needs(marker.group(1))
        if unknown or not needs:
          problems.append(f"line {k + 1}: unknown or empty needs {unknown or marker.group(1)!r}; "
                          f"use {sorted(NEEDS_TAGS)}")
    blocks.append(Block(i + 1, lang, lines[i + 1:j], needs))
    for n in range(i, min(j + 1, len(lines))):
      prose[n] = ""
    i = j + 1
  # A marker must sit right before a fence.
  for n, line in enumerate(prose):
    if MARKER.match(line.strip()):
      k = n + 1
      while k < len(lines) and not lines[k].strip():
        k += 1
      if k >= len(lines) or not FENCE.match(lines[k]):
        problems.append(f"line {n + 1}: a needs marker must come right before a fenced code block")
  return blocks, prose, problems


def commands_of(lines: list[str]) -> list[str]:
  """Shell lines -> commands: continuations joined, comments dropped, whitespace collapsed."""
  commands, current = [], ""
  for raw in lines:
    line = raw.strip()
    if not current and (not line or line.startswith("#")):
      continue
    line = re.sub(r"\s+#\s.*$", "", line)
    if line.endswith("\\"):
      current += line[:-1] + " "
      continue
    commands.append(normalize(current + line))
    current = ""
  if current.strip():
    commands.append(normalize(current))
  return commands


def table_cells(row: str) -> list[str]:
  """A markdown table row's cells; pipes inside code spans don't split."""
  cells, cell, in_code = [], "", False
  for ch in row.strip().strip("|"):
    if ch == "`":
      in_code = not in_code
    if ch == "|" and not in_code:
      cells.append(cell.strip())
      cell = ""
    else:
      cell += ch
  cells.append(cell.strip())
  return cells


def table_needs(prose: list[str], n: int):
  """For line n inside a table with a `needs` column: that row's needs cell; else None."""
  if not prose[n].lstrip().startswith("|"):
    return None
  top = n
  while top > 0 and prose[top - 1].lstrip().startswith("|"):
    top -= 1
  header = [c.lower() for c in table_cells(prose[top])]
  if "needs" not in header or n == top:
    return None
  cells = table_cells(prose[n])
  column = header.index("needs")
  return cells[column] if column < len(cells) else ""


def command_problems(text: str, run_by=None) -> list[str]:
  """Every shell command of a markdown text that is neither registered nor marked, one line each."""
  run_by = RUN_BY if run_by is None else run_by
  blocks, prose, problems = split_blocks(text)
  how = ("add it to RUN_BY in tests/test_docs.py with the test that runs it, or mark the block "
         f"with <!-- needs: ... --> ({', '.join(sorted(NEEDS_TAGS))})")
  for block in blocks:
    if block.lang in SHELL_LANGS:
      if block.needs is None:
        problems += [f"line {block.line}: `{c}` is not run by any test: {how}"
                     for c in commands_of(block.lines) if c not in run_by]
    elif block.lang != "python":
      problems += [f"line {block.line}: shell command in a ```{block.lang} block: label it ```sh"
                   for line in block.lines if COMMAND_START.match(line.strip())]
  joined = "\n".join(prose)
  for m in CODE_SPAN.finditer(joined):
    command = normalize(m.group(2))
    if not COMMAND_START.match(command + " "):
      continue
    n = joined.count("\n", 0, m.start())
    cell = table_needs(prose, n)
    if cell is not None and cell.strip() not in NOTHING:
      _, unknown = parse_needs(cell)
      if unknown:
        problems.append(f"line {n + 1}: unknown needs {unknown}; use {sorted(NEEDS_TAGS)}")
    elif command not in run_by:
      problems.append(f"line {n + 1}: inline `{command}` is not run by any test: {how}, "
                      "or put it in a marked ```sh block")
  return problems


def slug_anchors(text: str) -> set[str]:
  """GitHub's anchors for a markdown file's headings."""
  _, prose, _ = split_blocks(text)
  anchors, seen = set(), {}
  for line in prose:
    m = HEADING.match(line)
    if not m:
      continue
    slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
    count = seen.get(slug, 0)
    seen[slug] = count + 1
    anchors.add(slug if count == 0 else f"{slug}-{count}")
  return anchors


def link_targets(text: str) -> list[tuple[int, str]]:
  """(line, target) of every markdown link and image outside code."""
  _, prose, _ = split_blocks(text)
  joined = CODE_SPAN.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), "\n".join(prose))
  return [(joined.count("\n", 0, m.start()) + 1, m.group(1)) for m in LINK.finditer(joined)]


def link_problems(rel: str, text: str, root: str = REPO_ROOT) -> list[str]:
  problems = []
  for line, target in link_targets(text):
    if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
      continue
    path, _, anchor = target.partition("#")
    resolved = os.path.normpath(os.path.join(os.path.dirname(rel), path)) if path else rel
    full = os.path.join(root, resolved)
    if resolved.startswith(".."):
      problems.append(f"line {line}: {target} leaves the repository")
    elif not os.path.exists(full):
      problems.append(f"line {line}: {target} does not exist ({resolved})")
    elif anchor and resolved.endswith(".md"):
      with open(full, encoding="utf-8") as f:
        if anchor not in slug_anchors(f.read()):
          problems.append(f"line {line}: {target}: no heading #{anchor} in {resolved}")
  return problems


def ci_command(readme: str) -> str | None:
  """The command .ci/run extracts: the first `python3 ` line from the marker to the closing fence."""
  lines = readme.split("\n")
  try:
    start = next(i for i, line in enumerate(lines) if CI_MARKER in line)
  except StopIteration:
    return None
  for line in lines[start + 1:]:
    if line.startswith("python3 "):
      return normalize(line)
    if line == "```":
      return None
  return None


def find_test(node_id: str):
  """The source of a test function named by a pytest node id, or None."""
  path, *names = node_id.split("::")
  full = os.path.join(REPO_ROOT, path)
  if not os.path.isfile(full) or not names:
    return None
  source = read(path)
  scope = ast.parse(source).body
  node = None
  for name in names:
    name = name.split("[")[0]
    node = next((n for n in scope if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == name), None)
    if node is None:
      return None
    scope = node.body
  return ast.get_source_segment(source, node) if isinstance(node, ast.FunctionDef) else None


# The docs themselves.


@pytest.mark.parametrize("rel", doc_paths())
def test_every_shell_command_is_run_by_a_test_or_marked(rel):
  problems = command_problems(read(rel))
  assert not problems, f"{rel}:\n" + "\n".join(problems)


@pytest.mark.parametrize("rel", doc_paths())
def test_links_and_images_resolve(rel):
  problems = link_problems(rel, read(rel))
  assert not problems, f"{rel}:\n" + "\n".join(problems)


def test_every_docs_page_is_linked_from_the_readme_and_every_picture_from_a_page():
  readme_links = {os.path.normpath(t.partition("#")[0]) for _, t in link_targets(read(README))}
  pages = [p for p in doc_paths() if p != README]
  assert pages, "docs/*.md is empty"
  assert not [p for p in pages if p not in readme_links], "pages the README does not link"
  linked = {os.path.normpath(os.path.join(os.path.dirname(rel), t.partition("#")[0]))
            for rel in doc_paths() for _, t in link_targets(read(rel))}
  pictures = sorted(os.path.relpath(p, REPO_ROOT) for p in glob.glob(os.path.join(REPO_ROOT, "docs", "*.png")))
  assert not [p for p in pictures if p not in linked], "pictures no page shows"


def test_readme_stays_short_and_keeps_the_quick_start():
  readme = read(README)
  assert readme.count("\n") <= README_MAX_LINES, "move details into a docs/ page"
  assert ci_command(readme) == normalize(next(c for c, (r, _) in RUN_BY.items() if r == CI_RUNNER))
  assert "quick-start: tests" in read(CI_RUNNER)


@pytest.mark.parametrize("command", sorted(RUN_BY))
def test_each_registered_command_is_in_the_docs_and_its_test_exists(command):
  assert command == normalize(command), "write RUN_BY's keys with single spaces"
  docs = "\n".join(read(rel) for rel in doc_paths())
  found = [c for rel in doc_paths() for b in split_blocks(read(rel))[0] if b.lang in SHELL_LANGS
           for c in commands_of(b.lines)]
  found += [normalize(m.group(2)) for m in CODE_SPAN.finditer(docs)]
  assert command in found, "no page shows this command any more: drop it from RUN_BY"
  runner, evidence = RUN_BY[command]
  if runner == CI_RUNNER:
    assert ci_command(read(README)) == command
    return
  source = find_test(runner)
  assert source is not None, f"{runner} does not exist: point RUN_BY at the test that runs this command"
  assert evidence in source, f"{runner} no longer contains {evidence!r}: does it still run this command?"


# The checker catches what it should.


def test_an_unmarked_unregistered_block_fails():
  text = "Pre-train:\n\n```sh\npython -m clip2point_jax.main --config configs/pretrain.py --workdir runs/p\n```\n"
  problems = command_problems(text)
  assert len(problems) == 1 and "configs/pretrain.py" in problems[0] and problems[0].startswith("line 3:")
  bash = text.replace("```sh", "```bash").replace(" --workdir runs/p", "")
  assert len(command_problems(bash)) == 1


def test_marked_and_registered_blocks_pass():
  marked = ("<!-- needs: real data, gpu -->\n```sh\n"
            "python -m clip2point_jax.main --config configs/pretrain.py \\\n    --workdir runs/p\n```\n")
  assert not command_problems(marked)
  assert not command_problems(marked.replace("-->\n", "-->\n\n"))  # a blank line between is fine
  registered = "```sh\npython -m clip2point_jax.main --config configs/complexity.py \\\n  --workdir runs/complexity\n```"
  assert not command_problems(registered)
  # One registered command does not excuse another in the same block.
  mixed = ("```sh\npython -m clip2point_jax.main --config configs/complexity.py --workdir runs/complexity\n"
           "python -m clip2point_jax.main --config configs/pretrain.py  # the paper\n```\n")
  assert len(command_problems(mixed)) == 1


def test_bad_markers_fail():
  assert command_problems("<!-- needs: quantum -->\n```sh\nls\n```\n")
  assert command_problems("<!-- needs: -->\n```sh\nls\n```\n")
  assert command_problems("<!-- needs: gpu -->\nSome prose.\n\n```sh\nls\n```\n")


def test_inline_commands_and_tables():
  assert command_problems("Run `python -m clip2point_jax.main --config configs/pretrain.py` now.\n")
  assert command_problems("Run `python -m clip2point_jax.main\n--config configs/pretrain.py` now.\n")
  assert not command_problems("Set `--config.clip.name` and `clip2point_jax/main.py`.\n")
  table = ("| task | command | needs |\n| --- | --- | --- |\n"
           "| pretrain | `python -m clip2point_jax.main --config configs/pretrain.py` | {} |\n")
  assert not command_problems(table.format("real data, gpu"))
  assert command_problems(table.format("–"))
  assert command_problems(table.format("lots of ram"))
  assert command_problems(table.replace("| needs |", "| notes |").format(""))


def test_commands_in_unlabelled_blocks_fail():
  assert command_problems("```\npython -m clip2point_jax.main --config configs/pretrain.py\n```\n")
  assert command_problems("```text\nCUDA_VISIBLE_DEVICES=0 python train.py\n```\n")
  assert not command_problems("```\ndemo summary (a tiny CLIP):\n  top-1  12.5%\n```\n")
  assert not command_problems("```python\nimport os\n```\n")


def test_links(tmp_path):
  (tmp_path / "docs").mkdir()
  (tmp_path / "docs" / "a.md").write_text("# A page\n\n## The `render` block (hard|soft)\n")
  (tmp_path / "docs" / "p.png").write_bytes(b"")
  text = ("[a](docs/a.md) [b](docs/a.md#a-page) ![p](docs/p.png) [c](docs/a.md#the-render-block-hardsoft) "
          "[w](https://example.com) `[not](a link)`\n\n```\n[no](link.md)\n```\n")
  assert not link_problems("README.md", text, str(tmp_path))
  assert len(link_problems("README.md", "[x](docs/b.md)", str(tmp_path))) == 1
  assert len(link_problems("README.md", "[x](docs/a.md#nope)", str(tmp_path))) == 1
  assert len(link_problems("docs/a.md", "![x](docs/p.png)", str(tmp_path))) == 1  # relative to docs/
  (tmp_path / "README.md").write_text("")
  assert not link_problems("docs/a.md", "![x](p.png) [r](../README.md)", str(tmp_path))
  assert len(link_problems("docs/a.md", "[up](../../x.md)", str(tmp_path))) == 1  # outside the repository


def test_ci_command_is_read_as_ci_reads_it():
  readme = "x\n<!-- quick-start: tests -->\n```bash\npython3 -m pytest -q\n```\npython3 other\n"
  assert ci_command(readme) == "python3 -m pytest -q"
  assert ci_command(readme.replace("<!-- quick-start: tests -->", "")) is None


def test_find_test():
  assert find_test("tests/test_docs.py::test_find_test") is not None
  assert find_test("tests/test_docs.py::test_no_such_thing") is None
  assert find_test("tests/no_such_file.py::test_x") is None


def test_the_readme_library_snippet_runs_as_written(tiny_clip_dir):
  """The "As a library" block, run with a tiny CLIP in place of the Hub id and random clouds."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  with open(os.path.join(REPO_ROOT, README), encoding="utf-8") as f:
    text = f.read()
  section = text.split("## As a library", 1)[1]
  code = section.split("```python\n", 1)[1].split("```", 1)[0]
  assert '"openai/clip-vit-base-patch32"' in code
  code = code.replace('"openai/clip-vit-base-patch32"', repr(tiny_clip_dir))
  points = np.random.default_rng(0).normal(size=(2, 256, 3)).astype(np.float32)
  scope = {"points": points}
  exec(compile(code, "README.md (As a library)", "exec"), scope)  # pylint: disable=exec-used
  assert scope["logits"].shape == (2, 3) and np.all(np.isfinite(scope["logits"]))
  assert scope["depth"].shape == (2, 6, 224, 224)
  # The weights went to the device once; a call copies only the points.
  assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(scope["params"]))
