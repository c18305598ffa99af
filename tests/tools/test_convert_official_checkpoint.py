"""The authors' released checkpoint layout -> our depth encoder, checked against transformers' torch CLIP."""

import os
import shutil

import numpy as np
import safetensors.numpy
import pytest

from clip2point_jax.errors import UserError
from clip2point_jax.loading import depth_encoder, hf_clip
from clip2point_jax.projection import zeroshot
from clip2point_jax.tools import convert_official_checkpoint

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def _openai_visual(hf: dict, num_layers: int) -> dict:
  """HF `CLIPModel` vision tensors renamed to OpenAI CLIP's `visual.*` layout."""
  v = "vision_model."
  out = {
      "conv1.weight": hf[v + "embeddings.patch_embedding.weight"],
      "class_embedding": hf[v + "embeddings.class_embedding"],
      "positional_embedding": hf[v + "embeddings.position_embedding.weight"],
      "ln_pre.weight": hf[v + "pre_layrnorm.weight"], "ln_pre.bias": hf[v + "pre_layrnorm.bias"],
      "ln_post.weight": hf[v + "post_layernorm.weight"], "ln_post.bias": hf[v + "post_layernorm.bias"],
      "proj": hf["visual_projection.weight"].T.contiguous(),  # x @ proj
  }
  for i in range(num_layers):
    h, o = f"{v}encoder.layers.{i}.", f"transformer.resblocks.{i}."
    qkv = ("q_proj", "k_proj", "v_proj")
    out[o + "attn.in_proj_weight"] = torch.cat([hf[h + f"self_attn.{n}.weight"] for n in qkv])
    out[o + "attn.in_proj_bias"] = torch.cat([hf[h + f"self_attn.{n}.bias"] for n in qkv])
    for ours, theirs in (("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"),
                         ("ln_2", "layer_norm2"), ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")):
      for leaf in ("weight", "bias"):
        out[f"{o}{ours}.{leaf}"] = hf[f"{h}{theirs}.{leaf}"]
  return out


@pytest.fixture(name="released", scope="module")
def _released(tmp_path_factory, tiny_clip_dir):
  """A best_eval.pth in the authors' layout whose point_model differs from the tiny CLIP."""
  root = tmp_path_factory.mktemp("released")
  # The "trained" encoder: the tiny CLIP with every weight perturbed.
  trained_dir = shutil.copytree(tiny_clip_dir, str(root / "trained_clip"))
  weights = safetensors.numpy.load_file(os.path.join(trained_dir, "model.safetensors"))
  rng = np.random.default_rng(1)
  weights = {k: np.asarray(v + rng.normal(0, 0.05, v.shape), v.dtype) for k, v in weights.items()}
  safetensors.numpy.save_file(weights, os.path.join(trained_dir, "model.safetensors"))
  model = transformers.CLIPModel.from_pretrained(trained_dir).eval()
  visual = _openai_visual(model.state_dict(), model.config.vision_config.num_hidden_layers)
  state = {f"module.point_model.{k}": t.clone() for k, t in visual.items()}
  state.update({f"module.image_model.{k}": t.clone() * 0 for k, t in visual.items()})
  state["module.weights"] = torch.tensor(0.75)
  state["module.selector.view_selector.views_azim"] = torch.zeros(10)
  path = str(root / "best_eval.pth")
  torch.save(state, path)
  return path, model, state


def test_converted_encoder_gives_the_source_features(released, tiny_clip_dir, tmp_path):
  path, torch_model, _ = released
  out = str(tmp_path / "converted")
  convert_official_checkpoint.main([path, out])
  loaded = hf_clip.load_clip(tiny_clip_dir, dtype=np.float32)  # the unperturbed image tower
  params = depth_encoder.load_params(out, loaded)
  images = np.random.default_rng(0).normal(size=(3, 224, 224, 3)).astype(np.float32)
  encode = zeroshot.clip_image_encoder(loaded)
  ours = np.asarray(encode(params, images))
  with torch.no_grad():
    pooled = torch_model.vision_model(pixel_values=torch.from_numpy(images.transpose(0, 3, 1, 2))).pooler_output
    theirs = torch_model.visual_projection(pooled).numpy()
  np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
  plain = np.asarray(encode(loaded.params, images))
  assert np.abs(plain - theirs).max() > 1e-2  # The encoder really was replaced...
  assert params["text_model"] is loaded.params["text_model"]  # ...and the text tower kept.
  _, w = depth_encoder.read_encoder(depth_encoder.find_step_dir(out))
  assert w == pytest.approx(0.75)


def test_bad_released_files_are_named(released, tmp_path):
  path, _, state = released
  broken = dict(state)
  del broken["module.point_model.transformer.resblocks.1.mlp.c_fc.weight"]
  torch.save(broken, tmp_path / "broken.pth")
  with pytest.raises(UserError, match=r"broken.pth: point_model.transformer.resblocks.1.mlp.c_fc.weight is missing"):
    convert_official_checkpoint.convert(str(tmp_path / "broken.pth"), str(tmp_path / "o1"))
  torch.save({"module.something.else": torch.zeros(2)}, tmp_path / "other.pth")
  with pytest.raises(UserError, match=r"other.pth: no module.point_model"):
    convert_official_checkpoint.convert(str(tmp_path / "other.pth"), str(tmp_path / "o2"))
  (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
  with pytest.raises(UserError, match=r"junk.pth: cannot read it"):
    convert_official_checkpoint.convert(str(tmp_path / "junk.pth"), str(tmp_path / "o3"))
  with pytest.raises(UserError, match=r"exists and is not empty"):
    convert_official_checkpoint.convert(path, os.path.dirname(path))
