"""A small random CLIP in exact Hugging Face format: for tests, and tasks run without a real CLIP.

The directory holds `config.json` (saved by transformers' `CLIPConfig`),
`model.safetensors` (HF tensor names, float32) and CLIP tokenizer files whose
vocabulary is just the 256 byte symbols, the same with `</w>`, and the two
special tokens (no merges), so it loads with both
`transformers.CLIPModel.from_pretrained` and `hf_clip.load_clip`.

Tasks whose `config.clip.name` is empty get one in their workdir:

    tiny_clip.use_if_unnamed(config, workdir, "zeroshot")
"""

import json
import os
import tempfile
from typing import Any, Optional

import numpy as np

from clip2point_jax.core import paths
from clip2point_jax.errors import UserError

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
# 256 bytes, 256 bytes + "</w>", then BOS and EOS, as in OpenAI's vocabulary.
TINY_VOCAB_SIZE = 2 * 256 + 2
TINY_BOS_ID = TINY_VOCAB_SIZE - 2
TINY_EOS_ID = TINY_VOCAB_SIZE - 1


def default_hf_config() -> dict[str, Any]:
  """kwargs for `transformers.CLIPConfig`; image_size 224 fits the projector."""
  return {
      "vision_config": {
          "image_size": 224, "patch_size": 32, "hidden_size": 64,
          "intermediate_size": 256, "num_hidden_layers": 2,
          "num_attention_heads": 4, "hidden_act": "quick_gelu",
      },
      "text_config": {
          "vocab_size": TINY_VOCAB_SIZE, "max_position_embeddings": 77,
          "hidden_size": 64, "intermediate_size": 256,
          "num_hidden_layers": 2, "num_attention_heads": 4,
          "hidden_act": "quick_gelu", "bos_token_id": TINY_BOS_ID,
          "eos_token_id": TINY_EOS_ID, "pad_token_id": TINY_EOS_ID,
      },
      "projection_dim": 32,
  }


def byte_symbols() -> list[str]:
  """GPT-2/CLIP's printable stand-ins for the 256 bytes, in vocab order."""
  printable = (list(range(ord("!"), ord("~") + 1))
               + list(range(ord("\xa1"), ord("\xac") + 1))
               + list(range(ord("\xae"), ord("\xff") + 1)))
  codes = list(printable)
  extra = 0
  for b in range(256):
    if b not in printable:
      codes.append(256 + extra)
      extra += 1
  return [chr(c) for c in codes]


def _random_state_dict(hf_cfg: dict[str, Any],
                       seed: int) -> dict[str, np.ndarray]:
  """HF `CLIPModel` tensors with non-degenerate random values."""
  rng = np.random.default_rng(seed)
  f32 = lambda a: np.asarray(a, np.float32)
  normal = lambda shape, std: f32(rng.normal(0.0, std, shape))
  sd = {}

  def linear(prefix, d_in, d_out, bias=True):
    # 1/sqrt(fan_in) keeps activations O(1), so attention is far from uniform.
    sd[prefix + ".weight"] = normal((d_out, d_in), d_in**-0.5)
    if bias:
      sd[prefix + ".bias"] = normal((d_out,), 0.02)

  def layer_norm(prefix, d):
    sd[prefix + ".weight"] = f32(1.0 + rng.normal(0.0, 0.1, (d,)))
    sd[prefix + ".bias"] = normal((d,), 0.05)

  def encoder(prefix, cfg):
    d, h = cfg["hidden_size"], cfg["intermediate_size"]
    for i in range(cfg["num_hidden_layers"]):
      p = f"{prefix}.encoder.layers.{i}"
      for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
        linear(f"{p}.self_attn.{proj}", d, d)
      layer_norm(f"{p}.layer_norm1", d)
      linear(f"{p}.mlp.fc1", d, h)
      linear(f"{p}.mlp.fc2", h, d)
      layer_norm(f"{p}.layer_norm2", d)

  v = hf_cfg["vision_config"]
  dv, patch = v["hidden_size"], v["patch_size"]
  channels = v.get("num_channels", 3)
  n_pos = (v["image_size"] // patch) ** 2 + 1
  sd["vision_model.embeddings.class_embedding"] = normal((dv,), dv**-0.5)
  sd["vision_model.embeddings.patch_embedding.weight"] = normal(
      (dv, channels, patch, patch), (channels * patch * patch)**-0.5)
  sd["vision_model.embeddings.position_embedding.weight"] = normal(
      (n_pos, dv), 0.02)
  layer_norm("vision_model.pre_layrnorm", dv)
  encoder("vision_model", v)
  layer_norm("vision_model.post_layernorm", dv)

  t = hf_cfg["text_config"]
  dt = t["hidden_size"]
  sd["text_model.embeddings.token_embedding.weight"] = normal(
      (t["vocab_size"], dt), 0.02)
  sd["text_model.embeddings.position_embedding.weight"] = normal(
      (t["max_position_embeddings"], dt), 0.02)
  encoder("text_model", t)
  layer_norm("text_model.final_layer_norm", dt)

  proj = hf_cfg["projection_dim"]
  linear("visual_projection", dv, proj, bias=False)
  linear("text_projection", dt, proj, bias=False)
  sd["logit_scale"] = f32(hf_cfg.get("logit_scale_init_value", 2.6592))
  return sd


def _write_tokenizer(outdir: str, context_length: int):
  symbols = byte_symbols()
  tokens = symbols + [s + "</w>" for s in symbols] + [BOS_TOKEN, EOS_TOKEN]
  assert len(tokens) == TINY_VOCAB_SIZE
  with open(os.path.join(outdir, "vocab.json"), "w", encoding="utf-8") as f:
    json.dump({tok: i for i, tok in enumerate(tokens)}, f, ensure_ascii=False)
  with open(os.path.join(outdir, "merges.txt"), "w", encoding="utf-8") as f:
    f.write("#version: 0.2\n")

  # Round-trip through transformers so the remaining files are what it writes.
  import transformers  # pylint: disable=g-import-not-at-top
  tok = transformers.CLIPTokenizer.from_pretrained(
      outdir, model_max_length=context_length)
  tok.save_pretrained(outdir)
  # transformers 5 no longer writes this file; older releases expect it.
  special = {"bos_token": BOS_TOKEN, "eos_token": EOS_TOKEN,
             "unk_token": EOS_TOKEN, "pad_token": EOS_TOKEN}
  path = os.path.join(outdir, "special_tokens_map.json")
  if not os.path.exists(path):
    with open(path, "w", encoding="utf-8") as f:
      json.dump(special, f, indent=2)


def write_tiny_clip(outdir: str, seed: int = 0, **overrides) -> str:
  """Writes a random tiny CLIP checkpoint to `outdir` and returns `outdir`.

  Args:
    outdir: directory to create or overwrite files in.
    seed: seed for the weights.
    **overrides: `transformers.CLIPConfig` kwargs; the dicts `vision_config`
      and `text_config` are merged into the defaults key by key, e.g.
      `vision_config={"patch_size": 16}, text_config={"eos_token_id": 2}`.
      The vocabulary is fixed at `TINY_VOCAB_SIZE` tokens.
  """
  import safetensors.numpy  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top

  hf_cfg = default_hf_config()
  for key, value in overrides.items():
    if key in ("vision_config", "text_config"):
      hf_cfg[key] = {**hf_cfg[key], **value}
    else:
      hf_cfg[key] = value

  os.makedirs(outdir, exist_ok=True)
  config = transformers.CLIPConfig(**hf_cfg)
  config.architectures = ["CLIPModel"]
  config.to_json_file(os.path.join(outdir, "config.json"))
  safetensors.numpy.save_file(
      _random_state_dict(hf_cfg, seed),
      os.path.join(outdir, "model.safetensors"), metadata={"format": "pt"})
  _write_tokenizer(outdir, hf_cfg["text_config"]["max_position_embeddings"])
  return outdir


def ensure_tiny_clip(outdir: str, seed: int = 0, **overrides) -> str:
  """`write_tiny_clip` unless `outdir` already holds a checkpoint; host 0 writes first.

  Tasks keep their tiny CLIP in the workdir, which hosts share. A remote
  `outdir` (gs://...) gets a copy of one written in a local temporary folder
  (transformers and safetensors write local files only), model file last.
  """
  from clip2point_jax.core import parallel  # pylint: disable=g-import-not-at-top

  def write_once():
    if paths.path(os.path.join(outdir, "model.safetensors")).exists():
      return
    if not paths.is_remote(outdir):
      write_tiny_clip(outdir, seed, **overrides)
      return
    with tempfile.TemporaryDirectory() as local:
      write_tiny_clip(local, seed, **overrides)
      weights = os.path.join(local, "model.safetensors")
      with open(weights, "rb") as f:
        data = f.read()
      os.remove(weights)  # Uploaded last: its presence means the copy is complete.
      paths.upload_tree(local, outdir)
      paths.path(os.path.join(outdir, "model.safetensors")).write_bytes(data)

  parallel.host0_first(write_once, "tiny CLIP written")
  return outdir


FOLDER = "tiny_clip"  # inside the workdir


def default_patch_size(image_size: int) -> int:
  """16 below CLIP's 224 px (a 64 px image still gets 16 patches), else CLIP's 32."""
  return 16 if image_size < 224 else 32


def make_in_workdir(workdir: str, image_size: int, seed: int = 0,
                    patch_size: Optional[int] = None, field: str = "config.render.image_size") -> str:
  """The absolute folder of a tiny random CLIP for `image_size` px images in <workdir>/tiny_clip.

  Written once; a later run in the same workdir reuses it, so a depth encoder
  or GDPA trained on it still fits. The path is absolute because trained
  models record it and are loaded from other working directories.

  Raises:
    UserError (naming `field`) if the size is not a multiple of the patch, or
    the workdir's tiny CLIP was made for another size.
  """
  patch = int(patch_size or default_patch_size(image_size))
  if image_size % patch:
    raise UserError(f"{field}={image_size} is not a multiple of the tiny CLIP's {patch} px patches; "
                    f"use a multiple of {patch} (e.g. 64) or set --config.clip.name to a real CLIP")
  outdir = paths.absolute(os.path.join(paths.expand(workdir), FOLDER))
  ensure_tiny_clip(outdir, seed, vision_config={"image_size": image_size, "patch_size": patch})
  vision = paths.read_json(os.path.join(outdir, "config.json")).get("vision_config", {})
  made = (vision.get("image_size"), vision.get("patch_size"))
  if made != (image_size, patch):
    raise UserError(f"{outdir} is a tiny CLIP for {made[0]} px images ({made[1]} px patches), not "
                    f"{field}={image_size}; use another workdir, or delete {outdir}")
  return outdir


def random_weights_line(task: str, clip_dir: str, field: str = "clip.name", note: str = "") -> str:
  """The one line a task says when it runs on a tiny random CLIP."""
  return (f"{task}: using a tiny CLIP with RANDOM weights ({clip_dir}){note}; set --config.{field} "
          "to a real CLIP (e.g. openai/clip-vit-base-patch32) for meaningful results.")


def use_if_unnamed(config, workdir: str, task: str, note: str = "") -> bool:
  """Points an empty `config.clip.name` at a tiny random CLIP in the workdir; says so once.

  The CLIP takes `config.render.image_size` px images, with
  `config.clip.tiny_patch_size` px patches where the config has that field
  (else `default_patch_size`), and its weights are seeded by `config.seed`
  where the config has one.

  Returns:
    Whether it did (False: the config names a CLIP already).
  """
  from clip2point_jax.core import parallel  # pylint: disable=g-import-not-at-top

  if config.clip.name:
    return False
  seed = config.get("seed", 0)
  clip_dir = make_in_workdir(workdir, int(config.render.image_size),
                             seed=seed if isinstance(seed, int) else 0,
                             patch_size=config.clip.get("tiny_patch_size"))
  with config.unlocked():
    config.clip.name = clip_dir
  if parallel.is_host0():
    print(random_weights_line(task, clip_dir, note=note))
  return True
