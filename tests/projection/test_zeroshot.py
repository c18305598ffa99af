"""Zero-shot logits against a reference built from transformers' PyTorch CLIP, and a89c44e's."""

import dataclasses
import os

import jax.numpy as jnp
import numpy as np
import pytest

from renderers import cameras
from renderers import points as projector
from clip2point_jax.data import primitives
from clip2point_jax.errors import UserError
from clip2point_jax.loading import hf_clip
from clip2point_jax.projection import encode, zeroshot
from clip2point_jax.projection.settings import RenderSettings
from tests.conftest import LEGACY_DIR

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def loaded(tiny_clip_dir):
  return hf_clip.load_clip(tiny_clip_dir, dtype=jnp.float32, residual_dtype=jnp.float32)


@pytest.fixture(scope="module")
def torch_clip(tiny_clip_dir):
  return transformers.CLIPModel.from_pretrained(tiny_clip_dir).eval()


def _features(output):
  # transformers 5 may wrap the projected features in a ModelOutput.
  return output if isinstance(output, torch.Tensor) else output.pooler_output


def _torch_text_features(torch_clip, tokenizer, class_names, templates):
  per_template = []
  for template in templates:
    ids = tokenizer([template.format(c) for c in class_names], padding="max_length",
                    max_length=77, truncation=True, return_tensors="pt")["input_ids"]
    with torch.no_grad():
      f = _features(torch_clip.get_text_features(input_ids=ids)).numpy().astype(np.float64)
    per_template.append(f / np.linalg.norm(f, axis=-1, keepdims=True))
  mean = np.mean(per_template, 0)
  return mean / np.linalg.norm(mean, axis=-1, keepdims=True)


def test_text_features_ensemble_like_clip(loaded, torch_clip):
  names = ["chair", "flower pot", "tv stand"]
  templates = ("image of a {}", "a depth map of a {}.")
  ours = np.asarray(zeroshot.class_text_features(loaded, names, templates))
  ref = _torch_text_features(torch_clip, loaded.tokenizer, names, templates)
  np.testing.assert_allclose(ours, ref, atol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(ours, axis=-1), 1.0, atol=1e-6)


def test_points_to_logits_matches_reference(loaded, torch_clip):
  points, labels = primitives.generate(num_per_class=1, num_points=512, seed=3)
  points, labels = points[:3], labels[:3]
  names = list(primitives.CLASS_NAMES)
  views = cameras.VIEWS_ZERO_SHOT
  weights = np.array([1.0, 0.5, 2.0, 1.0, 0.25, 1.5], np.float32)
  text = zeroshot.class_text_features(loaded, names)
  classify = zeroshot.make_classifier(zeroshot.clip_depth_encoder(loaded), views=views,
                                      view_weights=weights)
  ours = np.asarray(classify(loaded.params, text, points))

  # Reference: depth maps (the projector has its own tests), CLIP's
  # normalisation in numpy, the PyTorch image tower, cosine sums over views.
  depth = np.asarray(projector.render_depth(projector.normalize_points(points), views))
  mean = np.array([0.48145466, 0.4578275, 0.40821073])[:, None, None]
  std = np.array([0.26862954, 0.26130258, 0.27577711])[:, None, None]
  images = (np.repeat(depth.reshape(-1, 1, 224, 224), 3, axis=1) - mean) / std
  with torch.no_grad():
    f = _features(torch_clip.get_image_features(pixel_values=torch.tensor(images, dtype=torch.float32)))
  f = f.numpy().astype(np.float64).reshape(3, 6, -1)
  f /= np.linalg.norm(f, axis=-1, keepdims=True)
  text_ref = _torch_text_features(torch_clip, loaded.tokenizer, names, ["image of a {}"])
  ref = np.einsum("bvd,cd,v->bc", f, text_ref, weights)
  np.testing.assert_allclose(ours, ref, atol=2e-4)
  assert np.abs(ours).max() > 1e-2  # Not a degenerate all-zero comparison.


def test_classifier_ignores_masked_padding(loaded):
  rng = np.random.default_rng(0)
  points = rng.normal(size=(2, 300, 3)).astype(np.float32)
  text = zeroshot.class_text_features(loaded, ["a", "b"])
  classify = zeroshot.make_classifier(zeroshot.clip_depth_encoder(loaded), views=cameras.VIEWS_ZERO_SHOT)
  padded = np.concatenate([points, rng.normal(9, 1, (2, 50, 3)).astype(np.float32)], 1)
  mask = np.broadcast_to(np.arange(350) < 300, (2, 350))
  np.testing.assert_allclose(np.asarray(classify(loaded.params, text, padded, mask)),
                             np.asarray(classify(loaded.params, text, points)), atol=1e-5)


def test_bad_prompts_and_view_weights_fail_clearly(loaded):
  with pytest.raises(UserError, match="must contain"):
    zeroshot.class_text_features(loaded, ["chair"], ("a photo",))
  with pytest.raises(UserError, match="view_weights has 2 entries for 6 views"):
    zeroshot.make_classifier(zeroshot.clip_depth_encoder(loaded), views=cameras.VIEWS_ZERO_SHOT,
                             view_weights=[1.0, 2.0])


def test_default_logits_are_a89c44es(tiny_clip_dir):
  # tests/fixtures/make_legacy_a89c44e.py's zero_shot_reference, on the same tiny CLIP at float32.
  reference = np.load(os.path.join(LEGACY_DIR, "reference.npz"))
  loaded = hf_clip.load_clip(tiny_clip_dir, dtype=jnp.float32, residual_dtype=jnp.float32)
  text = zeroshot.class_text_features(loaded, ["cube", "sphere", "torus"])
  classify = zeroshot.make_classifier(zeroshot.clip_depth_encoder(loaded), views=cameras.VIEWS_ZERO_SHOT)
  logits = np.asarray(classify(loaded.params, text, reference["zeroshot/points"]))
  np.testing.assert_allclose(logits, reference["zeroshot/logits"], rtol=1e-6, atol=1e-6)
  # The same settings given as a RenderSettings: the same function.
  same = zeroshot.make_classifier(zeroshot.clip_depth_encoder(loaded), RenderSettings())
  np.testing.assert_array_equal(np.asarray(same(loaded.params, text, reference["zeroshot/points"])), logits)


@pytest.mark.parametrize("change", [dict(mode="soft"), dict(camera="perspective", fov=50.0),
                                    dict(align_modelnet=True, distance=1.2)])
def test_every_render_setting_reaches_the_logits(loaded, change):
  rng = np.random.default_rng(4)
  points = rng.normal(size=(2, 128, 3)).astype(np.float32)
  text = zeroshot.class_text_features(loaded, ["a", "b", "c"])
  encode_depth = zeroshot.clip_depth_encoder(loaded)
  settings = dataclasses.replace(RenderSettings(view_weights=(1.0, 2.0, 1.0, 0.5, 1.0, 1.0)), **change)
  got = np.asarray(zeroshot.make_classifier(encode_depth, settings)(loaded.params, text, points))
  features = encode.points_to_features(encode_depth, loaded.params, jnp.asarray(points), settings)
  want = zeroshot.view_similarities(features, text, jnp.asarray(settings.view_weights))
  np.testing.assert_allclose(got, np.asarray(want), atol=1e-5)
  default = zeroshot.make_classifier(encode_depth, views=settings.views, view_weights=settings.view_weights)
  assert np.abs(got - np.asarray(default(loaded.params, text, points))).max() > 1e-4


def test_top_predictions_are_softmax_ranked():
  top = zeroshot.top_predictions(np.array([[0.1, 2.0, 1.0]]), ["a", "b", "c"], k=2)
  assert [name for name, _ in top[0]] == ["b", "c"]
  assert top[0][0][1] == pytest.approx(np.exp(2.0) / np.exp([0.1, 2.0, 1.0]).sum())
