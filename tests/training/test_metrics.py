"""Metrics against counts worked by hand."""

import numpy as np
import pytest

from clip2point_jax.training.metrics import classification_metrics


def test_metrics_by_hand():
  names = ["a", "b", "c", "d", "e", "f"]
  labels = np.array([0, 0, 1, 2, 2, 2])
  logits = np.random.default_rng(0).normal(size=(6, 6))
  # Force predictions 0, 1, 1, 2, 0, 5 by making those entries largest.
  for row, pred in enumerate([0, 1, 1, 2, 0, 5]):
    logits[row, pred] = 10.0
  m = classification_metrics(logits, labels, names)
  assert m["top1_accuracy"] == pytest.approx(3 / 6)
  assert m["per_class_accuracy"] == {"a": 0.5, "b": 1.0, "c": 1 / 3, "d": None, "e": None, "f": None}
  assert m["mean_class_accuracy"] == pytest.approx((0.5 + 1.0 + 1 / 3) / 3)
  assert m["confusion_matrix"][2] == [1, 0, 1, 0, 0, 1]
  assert m["top5_accuracy"] >= m["top1_accuracy"]
  # The true class ranked 6th of 6 misses the top 5.
  logits2 = np.tile(np.arange(6.0)[::-1], (1, 1))
  assert classification_metrics(logits2, np.array([5]), names)["top5_accuracy"] == 0.0
  assert classification_metrics(logits2, np.array([4]), names)["top5_accuracy"] == 1.0


def test_metrics_reject_mismatched_shapes():
  with pytest.raises(ValueError, match="do not fit"):
    classification_metrics(np.zeros((3, 4)), np.zeros(3, int), ["a", "b"])
