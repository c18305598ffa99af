"""Seeded K-shot sampling and validation splits carved out of train."""

import numpy as np
import pytest

from clip2point_jax.data import shots
from clip2point_jax.errors import UserError


def _labels():
  rng = np.random.default_rng(0)
  return rng.permutation(np.repeat(np.arange(5), [30, 25, 40, 20, 35]))


def test_same_seed_same_shots_and_exactly_k_per_class():
  labels = _labels()
  a = shots.sample_shots(labels, 4, seed=7)
  np.testing.assert_array_equal(a, shots.sample_shots(labels, 4, seed=7))
  assert not np.array_equal(a, shots.sample_shots(labels, 4, seed=8))
  assert np.all(np.diff(a) > 0)  # sorted, no repeats
  np.testing.assert_array_equal(np.bincount(labels[a], minlength=5), [4] * 5)
  # Draws are spread over each class, not its first examples.
  picks = [shots.sample_shots(labels, 1, seed=s)[0] for s in range(40)]
  assert len(set(picks)) > 10


def test_short_classes_give_all_they_have_and_one_line_names_them():
  labels = np.array([0] * 10 + [1] * 2 + [2] * 16)
  chosen = shots.sample_shots(labels, 4, seed=0)
  per_class = np.bincount(labels[chosen])
  np.testing.assert_array_equal(per_class, [4, 2, 4])
  note = shots.shortfall(per_class, 4, ("a", "b", "c"))
  assert "4-shot: 1 of 3 classes have fewer training clouds" in note and "(b 2)" in note
  assert "min 2 / max 4 per class" in note and "\n" not in note
  assert shots.shortfall([4, 4, 4], 4, ("a", "b", "c")) == ""
  assert shots.shortfall([10, 2, 16], 0, ("a", "b", "c")) == ""  # 0 shots: every cloud, nothing short
  np.testing.assert_array_equal(shots.sample_shots(labels, 0, seed=0), np.arange(len(labels)))


def test_validation_carve_out_is_stratified_disjoint_and_seeded():
  labels = _labels()
  train, val = shots.carve_validation(labels, 0.1, seed=3)
  assert not set(train) & set(val) and len(train) + len(val) == len(labels)
  np.testing.assert_array_equal(np.bincount(labels[val]), np.round(0.1 * np.bincount(labels)))
  again = shots.carve_validation(labels, 0.1, seed=3)
  np.testing.assert_array_equal(val, again[1])
  train0, val0 = shots.carve_validation(labels, 0.0, seed=3)
  assert len(val0) == 0 and len(train0) == len(labels)
  with pytest.raises(UserError, match="val_fraction"):
    shots.carve_validation(labels, 1.0, seed=0)


def test_subset_source_reads_through_indices():
  source = [{"points": np.full((2, 3), i), "label": i} for i in range(6)]
  subset = shots.SubsetSource(source, np.array([4, 1]))
  assert len(subset) == 2 and subset[0]["label"] == 4
  assert [e["label"] for e in subset.__getitems__([1, 0])] == [1, 4]
