"""render.mode pointclip and pointclip_v2 through the one projection path, and recipe-scored logits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clip2point_jax.data import primitives
from clip2point_jax.errors import UserError
from clip2point_jax.loading import classifier, hf_clip
from clip2point_jax.projection import encode, recipes, settings, zeroshot
from renderers import cameras
from renderers import pointclip, pointclip_v2
from tests.conftest import task_config

PROJECTORS = {"pointclip": pointclip, "pointclip_v2": pointclip_v2}


@pytest.fixture(scope="module")
def clouds():
  points, labels = primitives.generate(num_per_class=1, num_points=256, seed=1)
  return points[:3].astype(np.float32), labels[:3]


@pytest.fixture(scope="module")
def loaded(tiny_clip_dir):
  return hf_clip.load_clip(tiny_clip_dir, dtype=jnp.float32, residual_dtype=jnp.float32)


@pytest.mark.parametrize("mode", ["pointclip", "pointclip_v2"])
@pytest.mark.parametrize("normalize", [None, True])
def test_each_mode_gives_exactly_its_projectors_clip_input(mode, normalize, clouds):
  points, _ = clouds
  s = settings.from_config({"mode": mode, "clip_normalize": normalize})
  assert s.views == settings.MODE_VIEWS[mode] and len(s.views) == PROJECTORS[mode].NUM_VIEWS
  mask = np.ones(points.shape[:2], bool)
  mask[0, -40:] = False  # padding is skipped by both
  ours = jax.jit(lambda p, m: encode.view_images(p, s, mask=m))(points, mask)
  ref = np.asarray(PROJECTORS[mode].clip_input(PROJECTORS[mode].depth_maps(points, mask),
                                               normalize=bool(normalize)))
  # Unnormalised, the three channels are equal: the encoder reads one as its RGB copy.
  np.testing.assert_array_equal(np.asarray(ours), ref if normalize else ref[..., :1])
  # depth_maps: one channel of the unnormalised input, for figures.
  np.testing.assert_array_equal(np.asarray(encode.depth_maps(points, s, mask=mask)),
                                np.asarray(PROJECTORS[mode].clip_input(PROJECTORS[mode].depth_maps(points, mask)))[..., 0])


def test_clip2point_modes_keep_grey_depth_unless_clip_normalize_is_off(clouds):
  points, _ = clouds
  hard = settings.from_config({})
  assert hard.clip_normalize and encode.view_images(points, hard).ndim == 4
  raw = settings.from_config({"clip_normalize": False})
  np.testing.assert_array_equal(np.asarray(encode.view_images(points, raw)),
                                np.asarray(encode.depth_maps(points, hard))[..., None])


def test_views_of_the_pointclip_modes():
  for mode in PROJECTORS:
    # The configs' default lists stand for the method's own views.
    assert settings.from_config({"mode": mode}, cameras.VIEWS_ZERO_SHOT).views == settings.MODE_VIEWS[mode]
    assert settings.from_config({"mode": mode}, settings.MODE_VIEWS[mode]).views == settings.MODE_VIEWS[mode]
    with pytest.raises(UserError, match=f"render.mode='{mode}' renders its own"):
      settings.from_config({"mode": mode}, [(10.0, 20.0)])
  assert settings.from_config({"mode": "pointclip_v2"}, cameras.VIEWS_PRETRAIN).views == settings.MODE_VIEWS["pointclip_v2"]
  with pytest.raises(UserError, match="config.views lists 10 views"):  # a GDPA would be sized wrong
    settings.from_config({"mode": "pointclip"}, cameras.VIEWS_PRETRAIN)
  with pytest.raises(UserError, match="config.view_weights has 6 entries for 10 views"):
    settings.from_config({"mode": "pointclip_v2"}, None, [1.0] * 6)
  with pytest.raises(UserError, match="config.render.mode='pointclip3'; use one of hard, soft, pointclip, pointclip_v2"):
    settings.from_config({"mode": "pointclip3"})
  with pytest.raises(UserError, match="per-cloud views"):
    encode.depth_maps(jnp.zeros((1, 8, 3)), settings.from_config({"mode": "pointclip"}), distance=1.5)


def test_cache_identity_names_the_mode_but_old_defaults_stay_out():
  render = task_config("fewshot").render
  assert "clip_normalize" not in settings.identity(render) and "mode" not in settings.identity(render)
  with render.unlocked():
    render.mode = "pointclip_v2"
  assert settings.identity(render)["mode"] == "pointclip_v2"


def _official_logits(loaded, images, prompts, weights, logit_scale):
  """PointCLIP's model_inference in NumPy: unit view features weighted and concatenated, the
  per-class text feature (prompts averaged) repeated over the views and normalised, times the scale."""
  model = loaded.model
  b, v = images.shape[:2]
  f = np.asarray(model.apply({"params": loaded.params}, jnp.asarray(images.reshape((b * v,) + images.shape[2:])),
                             method=model.encode_image), np.float64).reshape(b, v, -1)
  f /= np.linalg.norm(f, axis=-1, keepdims=True)
  image_w = (f * np.asarray(weights)[None, :, None]).reshape(b, -1)
  texts = []
  for class_prompts in prompts:
    tokens = hf_clip.tokenize(loaded.tokenizer, list(class_prompts), 77)
    t = np.asarray(model.apply({"params": loaded.params}, jnp.asarray(tokens), method=model.encode_text), np.float64)
    t /= np.linalg.norm(t, axis=-1, keepdims=True)
    t = t.mean(0)
    texts.append(t / np.linalg.norm(t))
  text = np.tile(np.stack(texts), (1, v))
  text /= np.linalg.norm(text, axis=-1, keepdims=True)
  return logit_scale * image_w @ text.T


@pytest.mark.parametrize("method,dataset,names", [
    ("pointclip", "modelnet40", ["night_stand", "chair", "flower_pot"]),
    ("pointclip_v2", "modelnet40", ["airplane", "night_stand", "xbox"]),  # searched prompts, test-tuned weights
    ("pointclip_v2", "primitives", list(primitives.CLASS_NAMES[:3])),     # the untuned stand-in
])
def test_recipe_logits_are_the_official_formula(method, dataset, names, loaded, clouds):
  points, _ = clouds
  recipe = recipes.recipe(method, dataset, untuned_fallback=True)
  s = settings.from_config({"mode": method})
  text = zeroshot.recipe_text_features(loaded, recipe, names)
  classify = zeroshot.make_classifier(encode.clip_depth_encoder(loaded), s, view_weights=recipe.view_weights,
                                      scale=recipe.similarity_scale)
  ours = np.asarray(classify(loaded.params, text, points))
  projector = PROJECTORS[method]
  images = np.asarray(projector.clip_input(projector.depth_maps(points)))
  ref = _official_logits(loaded, images, recipe.prompts(names), recipe.view_weights, recipe.logit_scale)
  np.testing.assert_allclose(ours, ref, rtol=2e-5, atol=2e-4)


def test_the_classifier_scores_a_pointclip_mode_by_its_recipe(tiny_clip_dir, clouds):
  config = task_config("zeroshot", "dataset=modelnet40,tiny")
  with config.unlocked():
    config.clip.name = tiny_clip_dir
    config.render.mode = "pointclip"
  recipe = classifier.zero_shot_recipe(config)
  assert recipe.method == "pointclip" and recipe.similarity_scale == pytest.approx(100 / 6 ** 0.5)
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
  classify, params, text = classifier.load_classifier(config, ["chair", "night_stand"], mesh)
  assert config.views == settings.MODE_VIEWS["pointclip"]  # adopted: what the task records and draws
  assert classifier.probability_scale(config, params) == 1.0  # the logits carry the scale
  assert np.asarray(classify(params, text, clouds[0])).shape == (3, 2)
  with config.unlocked():
    config.render.mode = "pointclip_v2"
    config.data.name = "primitives"
  with pytest.raises(UserError, match="pointclip_v2 publishes prompts and view weights for modelnet40"):
    classifier.zero_shot_recipe(config)
  with config.unlocked():
    config.untuned_recipe = True
    config.view_weights = (2.0,) * 10
  recipe = classifier.zero_shot_recipe(config)
  assert not recipe.published and recipe.view_weights == (2.0,) * 10 and "config.view_weights" in recipe.source


def test_the_default_scoring_is_untouched(tiny_clip_dir):
  config = task_config("zeroshot", "dataset=modelnet40,tiny")
  recipe = classifier.zero_shot_recipe(config)
  assert recipe.method == "clip2point" and recipe.similarity_scale == 1.0
  assert recipe.templates == tuple(config.prompts) and recipe.record()["tuned_on_test_set"] is False
  assert settings.from_config(config.render).clip_normalize  # grey depth, normalised by the encoder
