"""The feature cache of the GDPA's frozen encoders: computed once per identity."""

import numpy as np

from clip2point_jax.features import view_features


def _identity(**changes):
  identity = {"depth_encoder": "d" * 32, "clip_encoder": "c" * 32, "split": "train",
              "data": {"name": "primitives", "examples": 3, "prepared": {"seed": 0}},
              "views": [[0, 0], [90, 0]], "num_points": 512, "render": {"radius": 0.02}}
  identity.update(changes)
  return identity


def test_features_are_computed_once_per_identity_and_shared_paths_stored_once(tmp_path, capsys):
  calls = []

  def compute():
    calls.append(1)
    return {"clip": np.arange(12, dtype=np.float32).reshape(3, 2, 2), "label": np.array([0, 1, 1], np.int32)}

  first = view_features.load_or_compute(str(tmp_path), _identity(), compute)
  again = view_features.load_or_compute(str(tmp_path), _identity(), compute)
  assert len(calls) == 1 and "using cached train features" in capsys.readouterr().out
  np.testing.assert_array_equal(again["clip"], first["clip"])
  assert again["depth"] is again["clip"]  # one array serves both paths when they share weights
  # Another encoder, view set or dataset preparation: another folder, computed anew.
  for changed in (_identity(depth_encoder="e" * 32), _identity(views=[[0, 0]]),
                  _identity(data={"name": "primitives", "examples": 3, "prepared": {"seed": 1}})):
    view_features.load_or_compute(str(tmp_path), changed, compute)
  assert len(calls) == 4
  folders = sorted(p.name for p in tmp_path.iterdir())
  assert len(folders) == 4 and all(f.startswith("primitives-train-") for f in folders)
