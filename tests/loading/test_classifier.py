"""classify's probabilities: the logits at the temperature the classifier was trained with."""

import json
import os
import shutil

import numpy as np

from clip2point_jax.core import parallel
from clip2point_jax.loading import classifier, trained_gdpa
from clip2point_jax.projection import zeroshot
from tests.conftest import set_fields, task_config
from tests.loading.test_trained_settings import trained_gdpa_dir  # pylint: disable=unused-import

# The tiny CLIP's logit_scale (CLIP's initial value, log(1 / 0.07)).
TINY_LOGIT_SCALE = 2.6592


def test_zero_shot_probabilities_use_clips_logit_scale_per_view(tiny_clip_dir):
  config = set_fields(task_config("classify", ""), **{"clip.name": tiny_clip_dir, "clip.dtype": "float32"})
  mesh = parallel.make_mesh()
  _, params, _ = classifier.load_classifier(config, ["box", "cone"], mesh)
  scale = classifier.probability_scale(config, params)
  np.testing.assert_allclose(scale, np.exp(TINY_LOGIT_SCALE) / len(config.views), rtol=1e-5)
  with_weights = set_fields(task_config("classify", ""), view_weights=(1.0, 1.0, 0.5, 0.5, 0.5, 0.5))
  np.testing.assert_allclose(classifier.probability_scale(with_weights, params),
                             np.exp(TINY_LOGIT_SCALE) / 4.0, rtol=1e-5)


def test_a_gdpa_without_a_scale_of_its_own_gets_clips(trained_gdpa_dir, tmp_path):
  config = set_fields(task_config("classify", ""), gdpa=trained_gdpa_dir)
  mesh = parallel.make_mesh()
  _, params, _ = classifier.load_classifier(config, ["box", "cone"], mesh)
  scale = classifier.probability_scale(config, params)
  np.testing.assert_allclose(scale, np.exp(TINY_LOGIT_SCALE), rtol=1e-5)
  # Cosines 0.30 and 0.20 were a near-even split; at CLIP's temperature the first leads clearly.
  cosines = np.array([[0.30, 0.20]])
  assert zeroshot.top_predictions(cosines, ["a", "b"], k=1)[0][0][1] < 0.53
  assert zeroshot.top_predictions(scale * cosines, ["a", "b"], k=1)[0][0][1] > 0.8

  learned = str(tmp_path / "learned")
  shutil.copytree(trained_gdpa_dir, learned)
  path = os.path.join(learned, "seed_0", trained_gdpa.MODEL_FILE)
  description = json.load(open(path))
  description["config"]["model"]["learn_logit_scale"] = True
  json.dump(description, open(path, "w"))
  config = set_fields(task_config("classify", ""), gdpa=learned)
  assert classifier.probability_scale(config, params) == 1.0  # its logits carry its own scale
