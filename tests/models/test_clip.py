"""Parity of the Flax CLIP with transformers' PyTorch `CLIPModel`."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clip2point_jax.errors import UserError
from clip2point_jax.kernels import dispatch
from clip2point_jax.models import clip
from clip2point_jax.loading import hf_clip
from clip2point_jax.tools import make_tiny_clip

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
torch.set_num_threads(1)

EOS = make_tiny_clip.TINY_EOS_ID
BOS = make_tiny_clip.TINY_BOS_ID

# Differs from the default tiny config in every dimension, uses exact GELU and
# the legacy eos_token_id == 2 (argmax) pooling.
OTHER_CONFIG = {
    "vision_config": {
        "image_size": 48, "patch_size": 16, "hidden_size": 48,
        "intermediate_size": 96, "num_hidden_layers": 3,
        "num_attention_heads": 3, "hidden_act": "gelu",
    },
    "text_config": {
        "max_position_embeddings": 24, "hidden_size": 32,
        "intermediate_size": 80, "num_hidden_layers": 3,
        "num_attention_heads": 2, "hidden_act": "gelu", "eos_token_id": 2,
    },
    "projection_dim": 24,
    "logit_scale_init_value": 3.0,
}


@pytest.fixture(scope="module")
def other_clip_dir(tmp_path_factory):
  out = tmp_path_factory.mktemp("other_clip")
  return make_tiny_clip.write_tiny_clip(str(out), seed=1, **OTHER_CONFIG)


@pytest.fixture(scope="module", params=["default", "other"])
def clip_dir(request, tiny_clip_dir, other_clip_dir):
  return {"default": tiny_clip_dir, "other": other_clip_dir}[request.param]


@pytest.fixture(scope="module")
def tiny(tiny_clip_dir):
  return hf_clip.load_clip(tiny_clip_dir, dtype=jnp.float32)


# Modules are hashable, so equal models share one compilation; eager apply
# would take seconds even for these tiny models.
@functools.partial(jax.jit, static_argnums=0)
def _encode_image(model, params, images):
  return model.apply({"params": params}, images, method=model.encode_image)


@functools.partial(jax.jit, static_argnums=0)
def _encode_text(model, params, token_ids):
  return model.apply({"params": params}, token_ids, method=model.encode_text)


def _encoders(loaded):
  return (functools.partial(_encode_image, loaded.model, loaded.params),
          functools.partial(_encode_text, loaded.model, loaded.params))


def _torch_features(ckpt_dir, images, token_ids):
  model = transformers.CLIPModel.from_pretrained(ckpt_dir).eval()
  with torch.no_grad():
    img = model.get_image_features(
        pixel_values=torch.from_numpy(images).permute(0, 3, 1, 2))
    txt = model.get_text_features(input_ids=torch.from_numpy(token_ids).long())
  # transformers 5 returns a BaseModelOutputWithPooling, 4 a tensor.
  img = getattr(img, "pooler_output", img)
  txt = getattr(txt, "pooler_output", txt)
  return img.numpy(), txt.numpy()


def _random_token_ids(rng, length):
  """Rows with EOS at different places, EOS padding, and no EOS at all."""
  ids = rng.integers(0, BOS, size=(5, length)).astype(np.int32)
  ids[:, 0] = BOS
  ids[0, 4] = EOS
  ids[1, length // 2:] = EOS  # padded with EOS: pooling takes the first.
  ids[2, -1] = EOS
  ids[3, 7] = EOS
  ids[3, 9] = EOS
  return ids  # row 4 has no EOS: each pooling rule has its own fallback.


@pytest.mark.parametrize("attention", ["auto", "pallas"])
def test_matches_transformers(clip_dir, attention):
  loaded = hf_clip.load_clip(clip_dir, dtype=jnp.float32, attention=attention)
  cfg = loaded.config
  rng = np.random.default_rng(0)
  size = cfg.vision.image_size
  images = rng.normal(size=(2, size, size, 3)).astype(np.float32)
  length = cfg.text.max_position_embeddings
  texts = ["image of a chair", "A photo of an airplane.", "long " * 100]
  token_ids = np.concatenate([
      _random_token_ids(rng, length),
      hf_clip.tokenize(loaded.tokenizer, texts, length)])

  encode_image, encode_text = _encoders(loaded)
  ours_img = np.asarray(encode_image(images))
  ours_txt = np.asarray(encode_text(token_ids))
  ref_img, ref_txt = _torch_features(clip_dir, images, token_ids)

  assert ours_img.shape == (2, cfg.projection_dim)
  assert ours_txt.shape == (len(token_ids), cfg.projection_dim)
  assert ours_img.dtype == ours_txt.dtype == np.float32
  np.testing.assert_allclose(ours_img, ref_img, atol=1e-4, rtol=0)
  np.testing.assert_allclose(ours_txt, ref_txt, atol=1e-4, rtol=0)
  # Non-degenerate weights: different inputs give clearly different features.
  assert np.abs(ours_img[0] - ours_img[1]).max() > 1e-2
  assert np.abs(ours_txt[0] - ours_txt[1]).max() > 1e-2
  # make_tiny_clip stores logit_scale_init_value as the weight.
  np.testing.assert_allclose(loaded.params["logit_scale"],
                             cfg.logit_scale_init_value, rtol=1e-6)


def test_eos_pooling_rules():
  ids = jnp.array([[BOS, 5, EOS, EOS], [BOS, 9, 3, 1]], jnp.int32)
  np.testing.assert_array_equal(clip.eos_positions(ids, EOS), [2, 0])
  np.testing.assert_array_equal(clip.eos_positions(ids, 2), [2, 0])
  ids = jnp.array([[BOS, 5, 3, EOS], [1, 2, 3, 0]], jnp.int32)
  np.testing.assert_array_equal(clip.eos_positions(ids, 2), [3, 2])


def test_bfloat16_close_to_float32(tiny, tiny_clip_dir):
  f32 = tiny
  bf16 = hf_clip.load_clip(tiny_clip_dir, dtype=jnp.bfloat16)
  assert all(x.dtype == np.float32 for x in jax.tree.leaves(bf16.params))
  rng = np.random.default_rng(1)
  images = rng.normal(size=(2, 224, 224, 3)).astype(np.float32)
  ids = hf_clip.tokenize(f32.tokenizer, ["image of a chair", "a table"], 77)
  (img32, txt32), (img16, txt16) = [
      (encode_image(images), encode_text(ids))
      for encode_image, encode_text in (_encoders(f32), _encoders(bf16))]
  assert img16.dtype == txt16.dtype == jnp.float32
  for lo, hi in ((img16, img32), (txt16, txt32)):
    rel = np.linalg.norm(lo - hi) / np.linalg.norm(hi)
    assert rel < 2e-2, rel
    assert rel > 0  # really ran in bfloat16


def test_vision_encoder_alone_matches_encode_image(tiny):
  loaded = tiny
  images = np.random.default_rng(1).normal(
      size=(2, 224, 224, 3)).astype(np.float32)
  encoder = clip.vision_tower(loaded.model)
  alone = jax.jit(encoder.apply)(
      {"params": clip.vision_params(loaded.params)}, images)
  np.testing.assert_allclose(
      alone, _encoders(loaded)[0](images), atol=1e-6, rtol=0)
  # The same subtree names, so fresh inits line up with loaded params too.
  fresh = jax.eval_shape(encoder.init, jax.random.key(0), images)["params"]
  assert (jax.tree.structure(fresh)
          == jax.tree.structure(clip.vision_params(loaded.params)))


def test_wrong_image_size_is_clear(tiny):
  with pytest.raises(ValueError, match="224"):
    _encoders(tiny)[0](jnp.zeros((1, 64, 64, 3)))


def test_param_names_mirror_hf(tiny):
  params = tiny.params
  names = {"/".join(k.key for k in path)
           for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]}
  for name in ("vision_model/encoder/layers_0/self_attn/q_proj/kernel",
               "vision_model/embeddings/patch_embedding/kernel",
               "vision_model/pre_layrnorm/scale",
               "vision_model/post_layernorm/bias",
               "visual_projection/kernel",
               "text_model/embeddings/token_embedding/embedding",
               "text_model/encoder/layers_1/mlp/fc2/bias",
               "text_model/final_layer_norm/scale",
               "text_projection/kernel", "logit_scale"):
    assert name in names, name
  assert params["vision_model"]["embeddings"]["patch_embedding"][
      "kernel"].shape == (32, 32, 3, 64)  # HWIO
  assert params["visual_projection"]["kernel"].shape == (64, 32)  # [in, out]


def test_config_from_hf_dict_defaults_and_legacy_overrides():
  cfg = clip.config_from_hf_dict({
      "text_config": {"hidden_size": 64, "num_attention_heads": 4},
      "text_config_dict": {"hidden_size": 128},
      "vision_config": {"image_size": [96, 96], "patch_size": 16},
      "projection_dim": 256,
  })
  assert cfg.text.hidden_size == 128 and cfg.text.num_attention_heads == 4
  assert cfg.text.eos_token_id == 49407 and cfg.text.hidden_act == "quick_gelu"
  assert cfg.vision.image_size == 96 and cfg.vision.num_patches == 36
  assert cfg.vision.hidden_size == 768 and cfg.projection_dim == 256
  with pytest.raises(UserError, match="hidden_act"):
    clip.config_from_hf_dict({"vision_config": {"hidden_act": "swish"}})
  with pytest.raises(UserError, match="divisible"):
    clip.config_from_hf_dict({"text_config": {"num_attention_heads": 7}})


def test_normalize_images():
  out = clip.normalize_images(jnp.broadcast_to(
      jnp.asarray(clip.CLIP_MEAN), (2, 4, 4, 3)))
  assert out.dtype == jnp.float32 and out.shape == (2, 4, 4, 3)
  np.testing.assert_allclose(out, 0.0, atol=1e-6)
  np.testing.assert_allclose(clip.normalize_images(jnp.ones(3)),
                             (1 - np.array(clip.CLIP_MEAN)) / clip.CLIP_STD,
                             rtol=1e-6)


def test_encode_depth_equals_encode_image_of_the_rgb_copy(tiny_clip_dir):
  from clip2point_jax.projection import zeroshot
  loaded = hf_clip.load_clip(tiny_clip_dir, dtype=jnp.float32)
  depth = np.random.default_rng(11).uniform(0, 1, (3, 224, 224)).astype(np.float32)
  direct = zeroshot.clip_depth_encoder(loaded)(loaded.params, jnp.asarray(depth))
  via_rgb = zeroshot.clip_image_encoder(loaded)(loaded.params, zeroshot.depth_to_clip_images(depth))
  np.testing.assert_allclose(np.asarray(direct), np.asarray(via_rgb), rtol=2e-5, atol=2e-5)
  assert np.abs(np.asarray(direct)).max() > 1e-2  # Not trivially small.


def test_a_one_channel_image_is_read_as_its_rgb_copy(tiny_clip_dir):
  loaded = hf_clip.load_clip(tiny_clip_dir, dtype=jnp.float32)
  grey = np.random.default_rng(12).uniform(0, 1, (3, 224, 224, 1)).astype(np.float32)
  encode = lambda images: loaded.model.apply({"params": loaded.params}, jnp.asarray(images),
                                             method=loaded.model.encode_image)
  one, three = np.asarray(encode(grey)), np.asarray(encode(np.repeat(grey, 3, -1)))
  np.testing.assert_allclose(one, three, rtol=2e-5, atol=2e-5)
  assert np.abs(one).max() > 1e-2
  with pytest.raises(ValueError, match="or 1 channel"):
    encode(np.repeat(grey, 2, -1))


def test_unknown_attention_is_refused(tiny_clip_dir):
  with pytest.raises(UserError, match="attention='flash'"):
    hf_clip.load_clip(tiny_clip_dir, attention="flash")
  with pytest.raises(UserError, match="layer_norm='fast'"):
    dispatch.KernelSettings(layer_norm="fast")


def test_load_clip_defaults_are_the_tasks_fast_path(tiny_clip_dir):
  """`load_clip(name)` computes as `load_configured` of the tasks' default clip block."""
  from tests.conftest import task_config
  plain = hf_clip.load_clip(tiny_clip_dir)
  clip_config = task_config("zeroshot").clip
  clip_config.name = tiny_clip_dir
  configured = hf_clip.load_configured(clip_config)
  assert plain.model == configured.model
  assert jnp.dtype(plain.model.dtype) == jnp.bfloat16
  assert jnp.dtype(plain.model.residual_dtype) == jnp.bfloat16
  assert plain.model.kernels == dispatch.resolve("auto", jnp.bfloat16)
  # A float32 model keeps a float32 residual stream unless told otherwise.
  f32 = hf_clip.load_clip(tiny_clip_dir, dtype=jnp.float32)
  assert f32.model.residual_dtype == jnp.float32 and f32.model.kernels == dispatch.XLA
  # The old keywords, and a settings object in their place.
  settings = dispatch.resolve("pallas", jnp.bfloat16, activation="xla")
  loaded = hf_clip.load_clip(tiny_clip_dir, dtype=jnp.bfloat16, attention=settings,
                             residual_dtype=jnp.float32)
  assert loaded.model.kernels == settings and loaded.model.residual_dtype == jnp.float32
