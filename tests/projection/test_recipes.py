"""Zero-shot recipes: CLIP2Point's matches today's defaults, PointCLIP's as published, V2's labelled test-tuned."""

import math

import numpy as np
import pytest

from clip2point_jax.data import classnames
from clip2point_jax.errors import UserError
from clip2point_jax.projection import recipes
from renderers import pointclip
from renderers import pointclip_v2
from tests.conftest import task_config


def test_clip2point_recipe_is_exactly_the_zeroshot_defaults():
  from clip2point_jax.features import text

  config = task_config("zeroshot")
  r = recipes.recipe("clip2point", "modelnet40")
  assert r.templates == tuple(config.prompts) == text.DEFAULT_TEMPLATES == ("image of a {}",)
  assert r.views == tuple(tuple(float(a) for a in v) for v in config.views)
  assert r.view_weights == tuple(config.view_weights) == ()
  assert r.similarity_scale == 1.0 and not r.tuned_on_test_set
  assert r.prompts(["night_stand"]) == (("image of a night_stand",),)  # names as given


def test_pointclip_recipe_as_published():
  r = recipes.recipe("pointclip", "modelnet40")
  assert r.views == pointclip.VIEW_ANGLES and r.view_weights == (1.0,) * 6
  assert r.templates == ("point cloud depth map of a {}.",)
  assert r.prompts(["flower_pot", "chair"]) == (("point cloud depth map of a flower pot.",),
                                                ("point cloud depth map of a chair.",))
  assert r.logit_scale == 100.0 and r.similarity_scale == pytest.approx(40.8248, abs=1e-4)  # 100 / sqrt(6)
  assert not r.tuned_on_test_set
  assert recipes.recipe("pointclip", "scanobjectnn_objbg").templates == r.templates


def test_pointclip_v2_recipes_are_the_searched_ones_and_labelled_test_tuned():
  r = recipes.recipe("pointclip_v2", "modelnet40", backbone="openai/clip-vit-base-patch16")
  assert (r.dataset, r.backbone) == ("modelnet40", "vit_b16")
  # best_param.py 'modelnet40_vit_b16_test_weights'.
  assert r.view_weights == (0.75, 0.75, 0.75, 0.25, 0.75, 1.0, 0.25, 1.0, 0.75, 0.25)
  assert r.views == pointclip_v2.VIEW_ANGLES and r.templates == ()
  assert r.tuned_on_test_set and r.logit_scale == 100.0
  assert r.similarity_scale == pytest.approx(100 / math.sqrt(10))
  prompts = r.prompts(classnames.MODELNET40)  # the package spells "flower pot", V2 "flower_pot"
  assert len(set(prompts)) == 40 and all(len(p) == 1 for p in prompts)
  assert prompts[0] == ("A three-dimensional model of an airplane composed of gray, fuzzy balls.",)
  # Verbatim, quirks included: ScanObjectNN rn50's toilet sentence describes a bowl.
  objbg = recipes.recipe("pointclip_v2", "scanobjectnn_objbg", backbone="RN50")
  assert objbg.dataset == "scanobjectnn"
  assert objbg.prompts(["toilet"])[0][0].startswith(" The heightmap would look like a white bowl")
  assert objbg.prompts(classnames.SCANOBJECTNN)[0] == ("This view shows a bag from the side.",)


def test_every_v2_entry_is_complete_and_test_tuned():
  for dataset, classes in recipes.V2_CLASSES.items():
    for backbone in recipes.BACKBONES:
      r = recipes.recipe("pointclip_v2", dataset, backbone=backbone)
      assert r.tuned_on_test_set and "best_param.py" in r.source
      assert len(r.view_weights) == 10 and set(r.view_weights) <= {0.25, 0.5, 0.75, 1.0}
      assert [c for c, _ in r.class_prompts] == list(classes)
      assert all(p.strip() for _, p in r.class_prompts)


def test_similarity_scale_turns_summed_cosines_into_the_official_logits():
  rng = np.random.default_rng(0)
  for method in recipes.METHODS:
    r = recipes.recipe(method, "modelnet40")
    v = r.num_views
    weights = np.asarray(r.view_weights or (1.0,) * v)
    feats = rng.normal(size=(v, 16))
    feats /= np.linalg.norm(feats, axis=-1, keepdims=True)
    text = rng.normal(size=16)
    text /= np.linalg.norm(text)
    summed = float((weights * (feats @ text)).sum())
    if r.text_over_views:  # official: s * concat(w_v f_v) . repeat(t) / |repeat(t)|
      repeated = np.tile(text, v)
      official = r.logit_scale * (weights[:, None] * feats).ravel() @ (repeated / np.linalg.norm(repeated))
    else:
      official = summed
    assert r.similarity_scale * summed == pytest.approx(official, rel=1e-9)


def test_dataset_names_cover_the_package_datasets():
  from clip2point_jax.data import registry

  assert set(registry.DATASETS) | {"files"} <= set(recipes.DATASETS)


def test_unknown_names_are_one_clear_user_error():
  with pytest.raises(UserError, match="unknown zero-shot method 'pointclip3'.*clip2point, pointclip, pointclip_v2"):
    recipes.recipe("pointclip3", "modelnet40")
  with pytest.raises(UserError, match="unknown dataset 'modelnet41'"):
    recipes.recipe("clip2point", "modelnet41")
  with pytest.raises(UserError, match="pointclip_v2 publishes .* not 'modelnet10'"):
    recipes.recipe("pointclip_v2", "modelnet10")
  with pytest.raises(UserError, match="no PointCLIP V2 entry for CLIP 'ViT-L/14'"):
    recipes.recipe("pointclip_v2", "modelnet40", backbone="ViT-L/14")
  with pytest.raises(UserError, match="no searched prompt for \\['sofa bed'\\]"):
    recipes.recipe("pointclip_v2", "modelnet40").prompts(["chair", "sofa bed"])
