"""Loading a trained depth encoder from pre-training checkpoints, and its errors."""

import jax
import numpy as np
import pytest

from clip2point_jax.core import checkpoints, layer_stack
from clip2point_jax.errors import UserError
from clip2point_jax.models import clip as clip_lib
from clip2point_jax.loading import depth_encoder, hf_clip
from clip2point_jax.tools import make_tiny_clip


def _trained_like(loaded, seed):
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda x: (x + rng.normal(0, 0.1, x.shape)).astype(np.float32),
                      depth_encoder.initial_params(loaded.params))


def test_workdir_gives_the_best_checkpoint_and_frozen_leaves_stay_clip(tiny_clip_dir, tmp_path):
  loaded = hf_clip.load_clip(tiny_clip_dir)
  ckpt = checkpoints.Checkpointer(str(tmp_path / "run" / "checkpoints"), keep=1,
                                  best_metric=depth_encoder.BEST_METRIC, async_save=False)
  encoders = {}
  for step, acc in ((10, 0.7), (20, 0.2), (30, None)):
    encoders[step] = _trained_like(loaded, step)
    trained = dict(encoders[step])
    del trained["visual_projection"]  # As if frozen: not in the train state.
    if step == 30:  # Trained with config.optim.stack_layers: the state holds the layers stacked.
      trained = layer_stack.stack(trained)
      assert set(trained["vision_model"]["encoder"]) == {layer_stack.STACKED}
    state = {"step": np.int32(step), "opt_state": {"mu": np.ones(3, np.float32)},
             "params": {depth_encoder.ENCODER: trained, depth_encoder.BALANCE_WEIGHT: np.float32(1.5)}}
    ckpt.save(step, state, metrics=None if acc is None else {depth_encoder.BEST_METRIC: acc})
  ckpt.close()
  params = depth_encoder.load_params(str(tmp_path / "run"), loaded)
  best = encoders[10]  # best validation accuracy, though not the latest
  jax.tree.map(np.testing.assert_array_equal, params["vision_model"], best["vision_model"])
  np.testing.assert_array_equal(params["visual_projection"]["kernel"],
                                loaded.params["visual_projection"]["kernel"])
  assert params["text_model"] is loaded.params["text_model"]
  # One step's folder works too, and stacked layers come back as layers_0, layers_1, ...
  step30 = depth_encoder.load_params(str(tmp_path / "run" / "checkpoints" / "30"), loaded)
  jax.tree.map(np.testing.assert_array_equal, step30["vision_model"], encoders[30]["vision_model"])


def test_missing_and_incompatible_checkpoints_are_one_clear_error(tiny_clip_dir, tmp_path):
  loaded = hf_clip.load_clip(tiny_clip_dir)
  with pytest.raises(UserError, match="no such folder"):
    depth_encoder.load_params(str(tmp_path / "nope"), loaded)
  (tmp_path / "empty").mkdir()
  with pytest.raises(UserError, match="holds no checkpoint"):
    depth_encoder.load_params(str(tmp_path / "empty"), loaded)
  other = hf_clip.load_clip(make_tiny_clip.write_tiny_clip(
      str(tmp_path / "wide_clip"), vision_config={"hidden_size": 32, "num_attention_heads": 2}))
  depth_encoder.save(str(tmp_path / "wide"), clip_lib.vision_params(other.params))
  with pytest.raises(UserError, match=r"wide/0 does not fit .* with other shapes"):
    depth_encoder.load_params(str(tmp_path / "wide"), loaded)
  ckpt = checkpoints.Checkpointer(str(tmp_path / "foreign"), async_save=False)
  ckpt.save(1, {"params": {"something": np.zeros(2, np.float32)}})
  ckpt.close()
  with pytest.raises(UserError, match="has no params/depth_encoder"):
    depth_encoder.load_params(str(tmp_path / "foreign"), loaded)
