"""The tiny checkpoint is real Hugging Face format, and the CLI writes it."""

import json
import os
import subprocess
import sys

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
