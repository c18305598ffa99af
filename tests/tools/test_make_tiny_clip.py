"""The tiny checkpoint is real Hugging Face format, and the CLI writes it."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from clip2point_jax.tools import make_tiny_clip

transformers = pytest.importorskip("transformers")
pytest.importorskip("torch")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def test_transformers_loads_it_without_missing_keys(tiny_clip_dir):
  model, info = transformers.CLIPModel.from_pretrained(
      tiny_clip_dir, output_loading_info=True)
  assert not any(info[k] for k in ("missing_keys", "unexpected_keys",
                                   "mismatched_keys", "error_msgs")), info
  assert model.config.vision_config.image_size == 224
  assert model.config.text_config.eos_token_id == make_tiny_clip.TINY_EOS_ID


@pytest.mark.parametrize("name", ["CLIPTokenizer", "CLIPTokenizerFast"])
def test_tokenizers_load_it(tiny_clip_dir, name):
  cls = getattr(transformers, name, None)
  if cls is None:
    pytest.skip(f"transformers {transformers.__version__} has no {name}")
  tok = cls.from_pretrained(tiny_clip_dir)
  assert len(tok) == make_tiny_clip.TINY_VOCAB_SIZE
  ids = tok("image of a chair")["input_ids"]
  assert ids[0] == make_tiny_clip.TINY_BOS_ID
  assert ids[-1] == make_tiny_clip.TINY_EOS_ID
  # No merges: one token per character, the last of each word with </w>.
  assert len(ids) == 2 + len("imageofachair")
  assert tok.decode(ids, skip_special_tokens=True) == "image of a chair"


def test_byte_symbols_are_a_permutation_of_256():
  symbols = make_tiny_clip.byte_symbols()
  assert len(set(symbols)) == 256
  assert symbols[0] == "!" and " " not in symbols


def test_cli_writes_a_checkpoint(tmp_path):
  out = tmp_path / "cli_clip"
  env = dict(os.environ, PYTHONPATH=REPO_ROOT + os.pathsep
             + os.environ.get("PYTHONPATH", ""))
  proc = subprocess.run(
      [sys.executable, "-m", "clip2point_jax.tools.make_tiny_clip", str(out),
       "--seed", "3"], env=env, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr
  for name in ("config.json", "model.safetensors", "vocab.json", "merges.txt",
               "tokenizer_config.json", "special_tokens_map.json"):
    assert (out / name).is_file(), name
  with open(out / "config.json") as f:
    config = json.load(f)
  assert config["model_type"] == "clip" and config["projection_dim"] == 32


class _ShapesOnly:
  """Stands in for numpy in `tiny_clip`: its random draws are zero-stride float32 views.

  `write_tiny_clip` then builds ViT-B/32's state dict with every shape right
  and next to no memory, so the test checks the layout without 500 MB.
  """

  class _Rng:
    def normal(self, loc=0.0, scale=1.0, size=None):
      del scale
      return np.broadcast_to(np.float32(loc), size)

  def __init__(self):
    self.random = type("random", (), {"default_rng": staticmethod(lambda seed=None: self._Rng())})

  def __getattr__(self, name):
    return getattr(np, name)


def test_vit_b_32_option_writes_clip_vit_base_patch32s_shapes(tmp_path, monkeypatch):
  import safetensors.numpy  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top

  from clip2point_jax.loading import tiny_clip  # pylint: disable=g-import-not-at-top
  from clip2point_jax.models import clip as clip_lib  # pylint: disable=g-import-not-at-top

  written = {}
  monkeypatch.setattr(tiny_clip, "np", _ShapesOnly())
  monkeypatch.setattr(safetensors.numpy, "save_file",
                      lambda tensors, path, metadata=None: written.update(
                          {k: tuple(v.shape) for k, v in tensors.items()}))
  out = tmp_path / "vit_b_32"
  make_tiny_clip.main([str(out), "--vit_b_32"])

  with open(out / "config.json") as f:
    config = json.load(f)
  ours = clip_lib.config_from_hf_dict(config)
  # The bench's ViT-B/32 (models.clip_config()) is CLIPConfig's defaults: the same tower.
  assert ours.vision == clip_lib.CLIPVisionConfig()
  assert ours.projection_dim == 512
  text = clip_lib.CLIPTextConfig()
  assert (ours.text.hidden_size, ours.text.intermediate_size, ours.text.num_hidden_layers,
          ours.text.num_attention_heads) == (text.hidden_size, text.intermediate_size,
                                             text.num_hidden_layers, text.num_attention_heads)
  assert ours.text.vocab_size == make_tiny_clip.TINY_VOCAB_SIZE
  # Exactly the tensors transformers' CLIPModel has for that config, shape for shape.
  hf_config = transformers.CLIPConfig.from_pretrained(str(out))
  with torch.device("meta"):
    model = transformers.CLIPModel(hf_config)
  expected = {k: tuple(v.shape) for k, v in model.state_dict().items()
              if not k.endswith("position_ids")}
  assert written == expected
  assert written["vision_model.embeddings.patch_embedding.weight"] == (768, 3, 32, 32)
  params = sum(int(np.prod(s)) for k, s in written.items() if k.startswith("vision_model."))
  assert params == 87_456_000  # ViT-B/32's image tower; its projection adds 393,216


def test_vit_b_32_option_refuses_another_image_size(tmp_path):
  with pytest.raises(SystemExit):
    make_tiny_clip.main([str(tmp_path / "x"), "--vit_b_32", "--image_size", "64"])
