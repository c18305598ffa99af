"""Seeded K-shot training sets and validation splits carved out of a training split.

Everything is index arithmetic over the split's labels, vectorised with
numpy; the same seed always gives the same indices.
"""

from typing import Sequence

import numpy as np

from clip2point_jax.errors import UserError


def _rank_within_class(labels: np.ndarray, rng: np.random.Generator):
  """A random order of the examples grouped by class, and each one's rank in its class."""
  order = rng.permutation(len(labels))
  order = order[np.argsort(labels[order], kind="stable")]  # by class, random inside
  grouped = labels[order]
  first = np.searchsorted(grouped, grouped, side="left")
  return order, np.arange(len(order)) - first


def sample_shots(labels: np.ndarray, shots: int, seed: int) -> np.ndarray:
  """K examples per class, drawn at random from a seed.

  Args:
    labels: int[M], the candidate examples' classes.
    shots: K > 0; 0 (or less) means every example.
    seed: the same seed gives the same examples.

  Returns:
    int64[<= C*K] indices into `labels`, sorted. A class with fewer than K
    examples contributes all it has (see `shortfall`).
  """
  labels = np.asarray(labels)
  if shots <= 0:
    return np.arange(len(labels))
  order, rank = _rank_within_class(labels, np.random.default_rng([seed, 0x5107]))
  return np.sort(order[rank < shots])


def shortfall(per_class: Sequence[int], shots: int, class_names: Sequence[str]) -> str:
  """One warning line naming the classes that had fewer than `shots` examples to give, or "".

  Args:
    per_class: int[C], the examples each class gave (`sample_shots`' picks).
  """
  per_class = np.asarray(per_class)
  short = np.flatnonzero(per_class < shots) if shots > 0 else []
  if not len(short):
    return ""
  listed = ", ".join(f"{class_names[c]} {per_class[c]}" for c in short)
  return (f"{shots}-shot: {len(short)} of {len(per_class)} classes have fewer training clouds, so "
          f"they train on all they have ({listed}); reported as min {per_class.min()} / max "
          f"{per_class.max()} per class")


def carve_validation(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Splits a training split into (train, validation) indices, stratified by class.

  Each class gives round(fraction * its count) examples to validation, at
  least one when fraction > 0 and the class has two or more.

  Returns:
    Two sorted int64 index arrays into `labels`; validation is empty when
    fraction is 0.
  """
  labels = np.asarray(labels)
  if not 0.0 <= fraction < 1.0:
    raise UserError(f"config.val_fraction={fraction!r} must be in [0, 1)")
  if fraction == 0.0:
    return np.arange(len(labels)), np.zeros((0,), np.int64)
  order, rank = _rank_within_class(labels, np.random.default_rng([seed, 0x7A1]))
  counts = np.bincount(labels)
  take = np.where(counts >= 2, np.maximum(np.round(fraction * counts), 1), 0).astype(np.int64)
  held_out = rank < take[labels[order]]
  return np.sort(order[~held_out]), np.sort(order[held_out])


class SubsetSource:
  """Random access to `source[indices[i]]`, like a TFDS data source."""

  def __init__(self, source, indices: np.ndarray):
    self.source, self.indices = source, np.asarray(indices)

  def __len__(self):
    return len(self.indices)

  def __getitem__(self, i):
    return self.source[int(self.indices[i])]

  def __getitems__(self, items):
    picked = [int(self.indices[i]) for i in items]
    if hasattr(self.source, "__getitems__"):
      return self.source.__getitems__(picked)
    return [self.source[i] for i in picked]
