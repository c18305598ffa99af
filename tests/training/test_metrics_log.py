"""loop.MetricsLog's learning curves: drawn in a worker thread while training goes on, waited for after."""

import threading

import pytest

from clip2point_jax.core import plots
from clip2point_jax.training import loop

RECORDS = [{"step": s, "loss": 9.0 - s / 10, "w": 1.0 + s / 100, "lr": 1e-3} for s in range(10, 60, 10)]


def _log(tmp_path):
  log = loop.MetricsLog(str(tmp_path), tensorboard=False)
  for record in RECORDS:
    log.write(record)
  return log


def test_a_background_plot_runs_in_a_worker_and_is_waited_for(tmp_path, monkeypatch):
  drawn, release = [], threading.Event()
  real = plots.save_learning_curves

  def slow_plot(records, path, title=""):
    release.wait(10)
    drawn.append((threading.current_thread().name, len(records), title))
    real(records, path, title=title)

  monkeypatch.setattr(plots, "save_learning_curves", slow_plot)
  log = _log(tmp_path)
  log.plot("step 50", background=True)  # returns at once: the worker waits for `release`
  log.write({"step": 60, "loss": 3.0})  # a record after the plot is not in its snapshot
  assert not drawn
  release.set()
  log.plot("final")  # waits for the background plot, then draws in this thread
  assert drawn[0][0].startswith("learning-curves") and drawn[0][1:] == (5, "step 50")
  assert drawn[1] == (threading.current_thread().name, 6, "final")
  log.close()
  assert (tmp_path / loop.CURVES_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_failed_background_plot_raises_at_the_next_plot_and_only_warns_at_close(tmp_path, monkeypatch,
                                                                                 capsys):
  def broken(records, path, title=""):
    raise RuntimeError("no fonts")

  monkeypatch.setattr(plots, "save_learning_curves", broken)
  log = _log(tmp_path)
  log.plot("a", background=True)
  with pytest.raises(RuntimeError, match="no fonts"):
    log.plot("b", background=True)
  log.plot("c", background=True)
  log.close()
  assert "learning_curves.png was not drawn" in capsys.readouterr().out
