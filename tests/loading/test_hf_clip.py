"""Checkpoint loading: the happy paths and every error a user can cause."""

import os
import shutil

import numpy as np
import pytest
import safetensors.numpy

from clip2point_jax.errors import UserError
from clip2point_jax.loading import hf_clip
from tests.conftest import task_config

Q_PROJ = "vision_model.encoder.layers.0.self_attn.q_proj.weight"


def _copy(src, dst, files=None):
  os.makedirs(dst, exist_ok=True)
  for name in files or os.listdir(src):
    shutil.copy(os.path.join(src, name), os.path.join(dst, name))
  return str(dst)


def _rewrite_weights(ckpt_dir, edit):
  path = os.path.join(ckpt_dir, "model.safetensors")
  sd = safetensors.numpy.load_file(path)
  edit(sd)
  safetensors.numpy.save_file(sd, path, metadata={"format": "pt"})
  return path


def _weights_only(tiny_clip_dir, tmp_path):
  return _copy(tiny_clip_dir, tmp_path / "ckpt",
               ["config.json", "model.safetensors"])


def test_loads_weights_and_tokenizer(tiny_clip_dir):
  loaded = hf_clip.load_clip(tiny_clip_dir)
  assert loaded.config.text.eos_token_id == 513
  assert loaded.config.vision.image_size == 224
  ids = hf_clip.tokenize(loaded.tokenizer, "image of a chair", 77)
  assert ids.dtype == np.int32 and ids.shape == (1, 77)
  assert ids[0, 0] == 512 and 513 in ids[0]
  long_ids = hf_clip.tokenize(loaded.tokenizer, ["chair " * 50, "a"], 77)
  # Truncated texts keep their EOS at the end, where the text tower pools.
  assert long_ids.shape == (2, 77) and long_ids[0, -1] == 513


def test_missing_directory(tmp_path):
  missing = str(tmp_path / "nope")
  with pytest.raises(UserError, match="nope.*does not exist"):
    hf_clip.load_clip(missing)


def test_missing_config(tiny_clip_dir, tmp_path):
  ckpt = _copy(tiny_clip_dir, tmp_path / "ckpt", ["model.safetensors"])
  with pytest.raises(UserError, match=r"ckpt/config\.json"):
    hf_clip.load_clip(ckpt)


def test_missing_weights(tiny_clip_dir, tmp_path):
  ckpt = _copy(tiny_clip_dir, tmp_path / "ckpt", ["config.json"])
  with pytest.raises(UserError, match="ckpt: no CLIP weights"):
    hf_clip.load_clip(ckpt)


def test_missing_key(tiny_clip_dir, tmp_path):
  ckpt = _weights_only(tiny_clip_dir, tmp_path)
  path = _rewrite_weights(ckpt, lambda sd: sd.pop(Q_PROJ))
  with pytest.raises(UserError) as e:
    hf_clip.load_clip(ckpt)
  assert path in str(e.value)
  assert f"1 missing: {Q_PROJ}" in str(e.value)


def test_many_missing_keys_are_counted(tiny_clip_dir, tmp_path):
  ckpt = _weights_only(tiny_clip_dir, tmp_path)
  _rewrite_weights(ckpt, lambda sd: [sd.pop(k) for k in list(sd)
                                     if k.startswith("text_model.")])
  with pytest.raises(UserError, match=r"missing: .*\(and \d+ more\)"):
    hf_clip.load_clip(ckpt)


def test_unexpected_key(tiny_clip_dir, tmp_path):
  ckpt = _weights_only(tiny_clip_dir, tmp_path)

  def add(sd):
    sd["vision_model.extra_head.weight"] = np.zeros((2, 2), np.float32)
    # Old checkpoints still carry this buffer; it must be ignored.
    sd["text_model.embeddings.position_ids"] = np.arange(77)[None]

  _rewrite_weights(ckpt, add)
  with pytest.raises(UserError) as e:
    hf_clip.load_clip(ckpt)
  assert "1 unexpected: vision_model.extra_head.weight" in str(e.value)
  assert "position_ids" not in str(e.value)


def test_wrong_shape(tiny_clip_dir, tmp_path):
  ckpt = _weights_only(tiny_clip_dir, tmp_path)

  def shrink(sd):
    sd[Q_PROJ] = sd[Q_PROJ][:, :10]
  _rewrite_weights(ckpt, shrink)
  with pytest.raises(UserError, match=rf"wrong shape: {Q_PROJ} \(64, 10\) "
                     r"\(expected \(64, 64\)\)"):
    hf_clip.load_clip(ckpt)


def test_corrupt_safetensors(tiny_clip_dir, tmp_path):
  ckpt = _weights_only(tiny_clip_dir, tmp_path)
  path = os.path.join(ckpt, "model.safetensors")
  with open(path, "r+b") as f:
    f.truncate(1000)
  with pytest.raises(UserError, match=r"model\.safetensors: cannot read"):
    hf_clip.load_clip(ckpt)


def test_unreachable_hub_id():
  # Offline this fails at once; online the repo does not exist.
  with pytest.raises(UserError, match="clip2point-jax-tests/no-such-clip"):
    hf_clip.load_clip("clip2point-jax-tests/no-such-clip")


def test_weights_without_tokenizer(tiny_clip_dir, tmp_path):
  loaded = hf_clip.load_clip(_weights_only(tiny_clip_dir, tmp_path))
  assert loaded.tokenizer is None
  assert "logit_scale" in loaded.params
  with pytest.raises(UserError, match="ships no tokenizer files"):
    hf_clip.tokenize(loaded.tokenizer, ["a chair"], 77)


def test_pytorch_bin_matches_safetensors(tiny_clip_dir, tmp_path):
  torch = pytest.importorskip("torch")
  ckpt = _copy(tiny_clip_dir, tmp_path / "ckpt", ["config.json"])
  sd = safetensors.numpy.load_file(
      os.path.join(tiny_clip_dir, "model.safetensors"))
  torch.save({k: torch.from_numpy(v) for k, v in sd.items()},
             os.path.join(ckpt, "pytorch_model.bin"))
  from_bin = hf_clip.load_clip(ckpt).params
  from_st = hf_clip.load_clip(tiny_clip_dir).params
  np.testing.assert_array_equal(
      from_bin["visual_projection"]["kernel"],
      from_st["visual_projection"]["kernel"])
  np.testing.assert_array_equal(from_bin["logit_scale"],
                                from_st["logit_scale"])


def test_residual_dtype_auto_follows_the_compute_dtype():
  clip_config = task_config("zeroshot").clip
  assert clip_config.residual_dtype == "auto"  # the fast path by default
  for dtype in ("bfloat16", "float32"):
    clip_config.dtype = dtype
    assert hf_clip.resolve_residual_dtype(clip_config) == dtype
  clip_config.dtype, clip_config.residual_dtype = "bfloat16", "float32"
  assert hf_clip.resolve_residual_dtype(clip_config) == "float32"
  clip_config.residual_dtype = "bf16"
  with pytest.raises(UserError, match=r"config\.clip\.residual_dtype='bf16'"):
    hf_clip.resolve_residual_dtype(clip_config)
