"""Pre-training's summary names only checkpoints that exist, and refuses batches beyond the data."""

import ml_collections
import pytest

from clip2point_jax.errors import UserError
from clip2point_jax.training import pretrain


class _Kept:
  """What `summary` reads of a `core.checkpoints.Checkpointer`."""

  def __init__(self, steps, best):
    self.steps, self.best, self.directory = steps, best, "/ckpt"

  def all_steps(self):
    return list(self.steps)

  def best_step(self):
    return self.best


def _records(vals):
  return [{"step": s, "loss": 1.0 / s} for s in range(1, len(vals) + 1)] + [
      {"step": s, "val_top1": v} for s, v in enumerate(vals, start=1)]


def test_a_tie_names_the_tied_step_that_was_kept(capsys):
  # Steps 1 and 2 tie at 0.5; the manager kept 2 (the later) and the latest, 4.
  out = pretrain.summary(_records([0.5, 0.5, 0.3, 0.3]), _Kept([2, 4], 2), "/w", 4)
  assert out["best_val_step"] == 2 and out["best_step"] == 2 and out["best_val_checkpoint_kept"]
  assert "best validation top-1 50.00% at step 2\n" in capsys.readouterr().out


def test_a_best_step_that_is_gone_is_not_named_as_a_checkpoint(capsys):
  out = pretrain.summary(_records([0.9, 0.5]), _Kept([2], 1), "/w", 2)
  assert out["best_step"] is None and out["best_val_step"] == 1 and not out["best_val_checkpoint_kept"]
  assert "at step 1 (its checkpoint was not kept)" in capsys.readouterr().out


def test_a_batch_beyond_the_data_is_refused_with_a_size_that_works():
  config = ml_collections.ConfigDict(dict(batch_size=256, data=dict(name="shapenet55", split="train")))
  pretrain.check_batch_size(config, 256, devices=8)
  with pytest.raises(UserError, match=r"^config.batch_size=256 is larger than the 45 shapes with renderings "
                                      r"in shapenet55/train; use --config.batch_size=40 or less \(a multiple "
                                      r"of the 8 devices\)$"):
    pretrain.check_batch_size(config, 45, devices=8)
  with pytest.raises(UserError, match="fewer than the 8 devices"):
    pretrain.check_batch_size(config, 5, devices=8)
