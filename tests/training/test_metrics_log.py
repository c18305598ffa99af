"""loop.MetricsLog's learning curves: drawn by a child process while training goes on, waited for after."""

import json
import os
import subprocess

from clip2point_jax.core import plots
from clip2point_jax.training import loop

RECORDS = [{"step": s, "loss": 9.0 - s / 10, "w": 1.0 + s / 100, "lr": 1e-3} for s in range(10, 60, 10)]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _log(tmp_path):
  log = loop.MetricsLog(str(tmp_path), tensorboard=False)
  for record in RECORDS:
    log.write(record)
  return log


def test_a_background_plot_is_drawn_by_a_child_process_from_the_metrics_file(tmp_path):
  log = _log(tmp_path)
  log.plot("step 50", background=True)
  process, _ = log._plotting  # pylint: disable=protected-access
  assert isinstance(process, subprocess.Popen) and process.pid != os.getpid()
  assert process.args[-3:] == [log.path, log.curves, "step 50"]
  log.close()  # waits for it
  assert process.returncode == 0
  assert (tmp_path / loop.CURVES_FILE).read_bytes()[:8] == PNG_MAGIC


def test_a_failed_background_plot_only_warns(tmp_path, capsys):
  log = _log(tmp_path)
  os.mkdir(log.curves)  # a folder where the picture goes: the child cannot write it
  log.plot("a", background=True)
  log.plot("b", background=True)  # waits for "a", says it failed, and goes on
  log.write({"step": 60, "loss": 3.0})
  log.close()
  out = capsys.readouterr().out
  assert out.count("learning_curves.png was not drawn (the plot exited with 1:") == 2
  assert "IsADirectoryError" in out
  assert [json.loads(line)["step"] for line in open(log.path)] == [10, 20, 30, 40, 50, 60]


def test_curves_from_a_file_leave_out_a_line_still_being_written(tmp_path, monkeypatch):
  metrics = tmp_path / "metrics.jsonl"
  metrics.write_text("".join(json.dumps(r) + "\n" for r in RECORDS) + '{"step": 60, "lo')
  drawn = []
  monkeypatch.setattr(plots, "save_learning_curves",
                      lambda records, path, title="": drawn.append((records, path, title)))
  plots.learning_curves_from_file(str(metrics), "curves.png", "t")
  assert drawn == [(RECORDS, "curves.png", "t")]
