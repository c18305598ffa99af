"""The demo through the CLI exactly as the README's first command runs it, and
the figures it prints against the README's copy of them."""

import json
import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The README's copy of what the demo prints: a ```text block after this marker.
README_BLOCK = re.compile(r"<!-- demo-output -->\n```text\n(.*?)```", re.S)
NUMBER = re.compile(r"\d+\.\d+")
# Another CPU may round differently: one test shape (100/64 %) of the 64, or
# the loss's third decimal. The same machine kind prints the same digits.
ACCURACY_TOLERANCE = 1.6
LOSS_TOLERANCE = 0.01


def readme_block() -> str:
  with open(os.path.join(REPO, "README.md")) as f:
    found = README_BLOCK.search(f.read())
  assert found, "README.md has no <!-- demo-output --> block"
  return found.group(1)


def differences(printed: str, expected: str) -> list[str]:
  """Lines of the demo summary that differ beyond the tolerances."""
  start = printed.index("demo summary")
  printed_lines = printed[start:].strip().splitlines()
  expected_lines = expected.strip().splitlines()
  found = []
  if len(printed_lines) < len(expected_lines):
    return [f"printed {len(printed_lines)} lines, the README has {len(expected_lines)}"]
  for got, want in zip(printed_lines, expected_lines):
    if NUMBER.sub("#", got) != NUMBER.sub("#", want):
      found.append(f"{got!r} != {want!r}")
      continue
    tolerance = LOSS_TOLERANCE if "loss" in want else ACCURACY_TOLERANCE
    for a, b in zip(NUMBER.findall(got), NUMBER.findall(want)):
      if abs(float(a) - float(b)) > tolerance:
        found.append(f"{got!r}: {a} against the README's {b}")
  return found


def test_the_comparison_catches_a_changed_figure():
  block = ("demo summary (x; chance  12.5%):\n  pre-training, 300 steps: loss 7.146 -> 5.144\n"
           "  16-shot GDPA (pre-trained + CLIP)    top-1  25.0%\n")
  assert not differences("noise\n" + block, block)
  assert not differences(block.replace("25.0%", "26.5%").replace("5.144", "5.150"), block)
  assert differences(block.replace("25.0%", "28.1%"), block)
  assert differences(block.replace("5.144", "5.170"), block)
  assert differences(block.replace("300 steps", "40 steps"), block)


def test_the_readme_demo_runs_and_prints_the_readmes_figures(tmp_path):
  proc = subprocess.run(
      [sys.executable, "-m", "clip2point_jax.main", "--config", "configs/demo.py",
       "--workdir", str(tmp_path)],
      cwd=REPO, capture_output=True, text=True, timeout=900, env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "RANDOM weights" in proc.stdout and "demo summary" in proc.stdout
  assert not differences(proc.stdout, readme_block()), differences(proc.stdout, readme_block())
  summary = json.loads((tmp_path / "demo_summary.json").read_text())
  assert summary["random_weights"] and summary["chance_accuracy"] == 0.125
  assert summary["pretrain"]["steps"] == 300
  assert summary["pretrain"]["final_loss"] < summary["pretrain"]["first_loss"]
  for name in ("1_pretrain/learning_curves.png", "2_zeroshot_clip/confusion_matrix.png",
               "3_zeroshot_pretrained/metrics.json", "4_fewshot/confusion_matrix.png"):
    assert (tmp_path / name).stat().st_size > 0, name
  # The zero-shot step with the pre-trained encoder really used it.
  trained = json.loads((tmp_path / "3_zeroshot_pretrained" / "metrics.json").read_text())
  assert trained["depth_encoder"] == str(tmp_path / "1_pretrain")
