"""The demo through the CLI, as the README's first command runs it (shorter: `tiny`)."""

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_cli_runs_the_demo_end_to_end(tmp_path):
  proc = subprocess.run(
      [sys.executable, "-m", "clip2point_jax.main", "--config", "configs/demo.py:tiny",
       "--workdir", str(tmp_path)],
      cwd=REPO, capture_output=True, text=True, timeout=600, env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "RANDOM weights" in proc.stdout and "demo summary" in proc.stdout
  summary = json.loads((tmp_path / "demo_summary.json").read_text())
  assert summary["random_weights"] and summary["chance_accuracy"] == 0.125
  assert summary["pretrain"]["steps"] == 40
  assert summary["pretrain"]["final_loss"] < summary["pretrain"]["first_loss"]
  for key in ("zeroshot_clip_top1", "zeroshot_pretrained_top1", "fewshot_top1"):
    assert 0.0 <= summary[key] <= 1.0, key
  for name in ("1_pretrain/learning_curves.png", "2_zeroshot_clip/confusion_matrix.png",
               "3_zeroshot_pretrained/metrics.json", "4_fewshot/confusion_matrix.png"):
    assert (tmp_path / name).stat().st_size > 0, name
  # The zero-shot step with the pre-trained encoder really used it.
  trained = json.loads((tmp_path / "3_zeroshot_pretrained" / "metrics.json").read_text())
  assert trained["depth_encoder"] == str(tmp_path / "1_pretrain")
