"""Loads a Hugging Face `CLIPModel` checkpoint into the Flax `clip.CLIP`.

A checkpoint is a Hub id (downloaded with `huggingface_hub`) or a local
directory with `config.json`, `model.safetensors` (or a sharded
`model.safetensors.index.json`, or `pytorch_model.bin`) and, optionally, the
CLIP tokenizer files. Weights are read with the numpy safetensors API; torch
is needed only for `pytorch_model.bin`.
"""

import json
import os
import re
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from clip2point_jax.core import paths
from clip2point_jax.errors import UserError
from clip2point_jax.kernels import dispatch
from clip2point_jax.models import clip

SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
TORCH_BIN = "pytorch_model.bin"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json",
                   "merges.txt", "special_tokens_map.json")
# Non-persistent buffers that older checkpoints still carry.
_IGNORED_KEYS = re.compile(r".*\.position_ids$")
# How many key names an error lists before it only counts the rest.
_LIST_AT_MOST = 5


class LoadedCLIP(NamedTuple):
  """What `load_clip` returns.

  Apply as `model.apply({"params": params}, x, method=model.encode_image)`.
  `tokenizer` is None when the checkpoint ships no tokenizer files.
  """
  model: clip.CLIP
  params: dict[str, Any]
  tokenizer: Any
  config: clip.CLIPConfig


def _looks_like_hub_id(name: str) -> bool:
  return re.fullmatch(r"[\w.-]+(/[\w.-]+)?", name) is not None and not (
      name.startswith(".") or name.endswith("."))


def _download(repo_id: str) -> str:
  """Fetches config, weights and tokenizer files of a Hub repo; its dir."""
  try:
    import huggingface_hub  # pylint: disable=g-import-not-at-top
    local = huggingface_hub.snapshot_download(
        repo_id, allow_patterns=[
            "config.json", SAFETENSORS, SAFETENSORS_INDEX,
            "model-*.safetensors", *TOKENIZER_FILES])
    if not any(os.path.exists(os.path.join(local, f))
               for f in (SAFETENSORS, SAFETENSORS_INDEX)):
      # Only old repos lack safetensors; fetch the (large) torch file then.
      local = huggingface_hub.snapshot_download(
          repo_id, allow_patterns=[TORCH_BIN])
  except Exception as e:  # pylint: disable=broad-except
    # huggingface_hub raises many types (offline, 401/404, HTTP, OS errors).
    detail = (str(e).splitlines() or [""])[0]
    raise UserError(
        f"{repo_id!r} is not a local directory and could not be downloaded "
        f"from the Hugging Face Hub ({type(e).__name__}: {detail}). Without "
        "network access, pass a local directory holding config.json and "
        "model.safetensors instead.") from e
  return local


def resolve_checkpoint_dir(name_or_path: str) -> str:
  """The local directory for a path or Hub id; downloads Hub ids, copies remote (gs://) folders.

  transformers and safetensors read local files only, so a folder in a bucket
  is copied to this machine once (`paths.local_copy`).
  """
  if paths.is_remote(name_or_path):
    return paths.local_copy(name_or_path)
  path = os.path.expanduser(name_or_path)
  if os.path.isdir(path):
    return path
  if os.path.exists(path):
    raise UserError(f"CLIP checkpoint {name_or_path!r} is a file; expected a "
                    "directory with config.json and model.safetensors")
  if os.path.isabs(path) or not _looks_like_hub_id(name_or_path):
    raise UserError(
        f"CLIP checkpoint directory {name_or_path!r} does not exist")
  return _download(name_or_path)


def read_config(ckpt_dir: str) -> clip.CLIPConfig:
  """Parses `ckpt_dir/config.json`."""
  path = os.path.join(ckpt_dir, "config.json")
  if not os.path.isfile(path):
    raise UserError(f"{path}: no config.json in the CLIP checkpoint directory")
  try:
    with open(path, encoding="utf-8") as f:
      hf = json.load(f)
  except (OSError, ValueError) as e:
    raise UserError(f"{path}: cannot read CLIP config: {e}") from e
  if not isinstance(hf, dict):
    raise UserError(f"{path}: expected a JSON object")
  if hf.get("model_type") not in (None, "clip"):
    raise UserError(
        f"{path}: model_type is {hf.get('model_type')!r}; expected 'clip'")
  try:
    return clip.config_from_hf_dict(hf)
  except UserError as e:
    raise UserError(f"{path}: {e}") from e
  except (TypeError, ValueError) as e:
    raise UserError(f"{path}: invalid CLIP config: {e}") from e


def _read_safetensors(path: str) -> dict[str, np.ndarray]:
  import safetensors.numpy  # pylint: disable=g-import-not-at-top
  try:
    return safetensors.numpy.load_file(path)
  except Exception as e:  # pylint: disable=broad-except
    # safetensors raises its own error types (and TypeError for odd dtypes).
    raise UserError(f"{path}: cannot read safetensors file ({e})") from e


def _read_torch_bin(path: str) -> dict[str, np.ndarray]:
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise UserError(
        f"{path}: reading pytorch_model.bin needs torch, which is not "
        "installed; install torch or convert the checkpoint to "
        "model.safetensors") from e
  try:
    sd = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:  # pylint: disable=broad-except
    raise UserError(f"{path}: cannot read torch checkpoint ({e})") from e
  return {k: v.detach().float().numpy() for k, v in sd.items()}


def read_state_dict(ckpt_dir: str) -> tuple[str, dict[str, np.ndarray]]:
  """Returns (weights path, HF tensor name -> array) for a checkpoint dir."""
  single = os.path.join(ckpt_dir, SAFETENSORS)
  index = os.path.join(ckpt_dir, SAFETENSORS_INDEX)
  torch_bin = os.path.join(ckpt_dir, TORCH_BIN)
  if os.path.isfile(single):
    return single, _read_safetensors(single)
  if os.path.isfile(index):
    try:
      with open(index, encoding="utf-8") as f:
        shards = sorted(set(json.load(f)["weight_map"].values()))
    except (OSError, ValueError, KeyError, AttributeError) as e:
      raise UserError(f"{index}: cannot read safetensors index ({e})") from e
    sd = {}
    for shard in shards:
      sd.update(_read_safetensors(os.path.join(ckpt_dir, shard)))
    return index, sd
  if os.path.isfile(torch_bin):
    return torch_bin, _read_torch_bin(torch_bin)
  raise UserError(
      f"{ckpt_dir}: no CLIP weights found; expected {SAFETENSORS}, "
      f"{SAFETENSORS_INDEX} or {TORCH_BIN}")


def read_logit_scale(name_or_path: str) -> float:
  """CLIP's learned `logit_scale` (before exp) from a checkpoint, reading that tensor alone where it can."""
  ckpt_dir = resolve_checkpoint_dir(name_or_path)
  single = os.path.join(ckpt_dir, SAFETENSORS)
  if os.path.isfile(single):
    import safetensors  # pylint: disable=g-import-not-at-top
    try:
      with safetensors.safe_open(single, framework="numpy") as f:
        if "logit_scale" in f.keys():
          return float(np.asarray(f.get_tensor("logit_scale")))
    except Exception as e:  # pylint: disable=broad-except
      raise UserError(f"{single}: cannot read safetensors file ({e})") from e
  source, state_dict = read_state_dict(ckpt_dir)
  if "logit_scale" not in state_dict:
    raise UserError(f"{source}: no logit_scale tensor; is it a CLIPModel checkpoint?")
  return float(np.asarray(state_dict["logit_scale"]))


def _hf_name_and_layout(flax_path: tuple[str, ...], ndim: int):
  """HF tensor name for a Flax param, and the axes turning HF into Flax."""
  *modules, leaf = flax_path
  modules = [re.sub(r"^layers_(\d+)$", r"layers.\1", m) for m in modules]
  axes = None
  if leaf == "kernel" and ndim == 2:
    axes = (1, 0)  # torch Linear is [out, in]
  elif leaf == "kernel" and ndim == 4:
    axes = (2, 3, 1, 0)  # torch Conv2d is OIHW, flax HWIO
  hf_leaf = {"kernel": "weight", "scale": "weight", "embedding": "weight"}.get(
      leaf, leaf)
  return ".".join(modules + [hf_leaf]), axes


def _summarise(keys: Sequence[str]) -> str:
  keys = sorted(keys)
  shown = ", ".join(keys[:_LIST_AT_MOST])
  more = len(keys) - _LIST_AT_MOST
  return shown + (f" (and {more} more)" if more > 0 else "")


def convert_state_dict(state_dict: dict[str, np.ndarray],
                       config: clip.CLIPConfig, source: str) -> dict[str, Any]:
  """Maps HF tensors onto the `clip.CLIP` param tree (float32 numpy leaves).

  Args:
    state_dict: HF tensor name -> array, as in `CLIPModel.state_dict()`.
    config: the architecture the tensors must fit.
    source: the checkpoint path, for error messages.

  Raises:
    UserError: naming the missing, unexpected and mis-shaped tensors.
  """
  model = clip.CLIP(config)
  shapes = jax.eval_shape(
      model.init, jax.random.key(0),
      jnp.zeros((1, config.vision.image_size, config.vision.image_size,
                 config.vision.num_channels)),
      jnp.zeros((1, config.text.max_position_embeddings), jnp.int32))["params"]
  flat, treedef = jax.tree_util.tree_flatten_with_path(shapes)

  leaves, missing, misshaped, used = [], [], [], set()
  for key_path, shape_struct in flat:
    path = tuple(k.key for k in key_path)
    want = tuple(shape_struct.shape)
    name, axes = _hf_name_and_layout(path, len(want))
    if name not in state_dict:
      missing.append(name)
      leaves.append(None)
      continue
    used.add(name)
    value = np.asarray(state_dict[name])
    hf_want = want if axes is None else tuple(
        want[axes.index(i)] for i in range(len(want)))
    if value.shape != hf_want:
      misshaped.append(f"{name} {value.shape} (expected {hf_want})")
      leaves.append(None)
      continue
    if axes is not None:
      value = value.transpose(axes)
    # np.ascontiguousarray would turn the scalar logit_scale into shape [1].
    leaves.append(np.array(value, dtype=np.float32, order="C"))

  unexpected = [k for k in state_dict
                if k not in used and not _IGNORED_KEYS.fullmatch(k)]
  if missing or unexpected or misshaped:
    problems = []
    if missing:
      problems.append(f"{len(missing)} missing: {_summarise(missing)}")
    if unexpected:
      problems.append(
          f"{len(unexpected)} unexpected: {_summarise(unexpected)}")
    if misshaped:
      problems.append(
          f"{len(misshaped)} with the wrong shape: {_summarise(misshaped)}")
    raise UserError(
        f"{source}: the weights do not match its CLIP config.json; "
        + "; ".join(problems))
  return jax.tree_util.tree_unflatten(treedef, leaves)


def load_tokenizer(ckpt_dir: str):
  """The CLIP tokenizer saved in `ckpt_dir`, or None when it has none."""
  has_fast = os.path.isfile(os.path.join(ckpt_dir, "tokenizer.json"))
  has_bpe = all(os.path.isfile(os.path.join(ckpt_dir, f))
                for f in ("vocab.json", "merges.txt"))
  if not (has_fast or has_bpe):
    return None
  import transformers  # pylint: disable=g-import-not-at-top
  # transformers 4 has a separate fast class; in 5 CLIPTokenizer is fast.
  cls = getattr(transformers, "CLIPTokenizerFast", None)
  cls = cls or transformers.CLIPTokenizer
  try:
    return cls.from_pretrained(ckpt_dir)
  except Exception as e:  # pylint: disable=broad-except
    raise UserError(f"{ckpt_dir}: cannot load the CLIP tokenizer ({e})") from e


def tokenize(tokenizer, texts: str | Sequence[str],
             context_length: int) -> np.ndarray:
  """Tokenises like CLIP: BOS, tokens, EOS, padded or truncated to a length.

  Truncated texts still end in EOS, which is where the text tower pools.

  Args:
    tokenizer: `LoadedCLIP.tokenizer`.
    texts: T strings (or one string, giving T = 1).
    context_length: the text config's `max_position_embeddings` (77 for CLIP).

  Returns:
    int32[T, context_length] token ids.
  """
  if tokenizer is None:
    raise UserError(
        "this checkpoint ships no tokenizer files; add tokenizer.json (or "
        "vocab.json and merges.txt) from the same CLIP release to its "
        "directory, or pass token ids directly")
  if isinstance(texts, str):
    texts = [texts]
  out = tokenizer(list(texts), padding="max_length", truncation=True,
                  max_length=context_length, return_tensors="np")
  return np.asarray(out["input_ids"], np.int32)


def load_clip(name_or_path: str = "openai/clip-vit-base-patch32",
              dtype=jnp.bfloat16, attention: str | dispatch.KernelSettings = "auto",
              residual_dtype=None) -> LoadedCLIP:
  """Loads a Hugging Face CLIP checkpoint as a Flax model and params.

  The defaults are the tasks' (configs/common.py): bfloat16 compute, the
  Pallas kernels on GPUs, the residual stream in the compute dtype. Pass
  dtype=jnp.float32 for the plain float32 reference.

  Args:
    name_or_path: a local checkpoint directory or a Hugging Face Hub id.
    dtype: compute dtype of the model, jnp.bfloat16 or jnp.float32; the params
      are float32 either way.
    attention: "auto", "xla", "cudnn" or "pallas", resolved for `dtype` on
      this backend by `kernels.dispatch.resolve`; or the `KernelSettings` to use.
    residual_dtype: the residual stream's dtype; None (or "auto"): the
      compute dtype, as the tasks' configs default to (`resolve_residual_dtype`).

  Returns:
    LoadedCLIP(model, params, tokenizer, config), params a nested dict of
    float32 numpy arrays as laid out in `clip.py`.

  Raises:
    UserError: for a missing directory or config, unreadable weights, weights
      that do not fit the config, or a Hub id that cannot be downloaded.
  """
  kernels = (attention if isinstance(attention, dispatch.KernelSettings)
             else dispatch.resolve(attention, dtype))
  if residual_dtype is None or (isinstance(residual_dtype, str) and residual_dtype == "auto"):
    residual_dtype = dtype
  ckpt_dir = resolve_checkpoint_dir(name_or_path)
  config = read_config(ckpt_dir)
  source, state_dict = read_state_dict(ckpt_dir)
  params = convert_state_dict(state_dict, config, source)
  tokenizer = load_tokenizer(ckpt_dir)
  model = clip.CLIP(config, dtype=dtype, kernels=kernels, residual_dtype=residual_dtype)
  return LoadedCLIP(model, params, tokenizer, config)


DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def load_configured(clip_config, image_size: int | None = None) -> LoadedCLIP:
  """The CLIP a task config's `clip` block names, with its compute settings.

  Args:
    clip_config: has `name`, `dtype` ("float32" or "bfloat16"),
      `residual_dtype` (the same, or "auto": the compute dtype) and `attention`
      ("auto", "xla", "cudnn" or "pallas").
    image_size: `config.render.image_size`, checked against the CLIP's input size.
  """
  if clip_config.dtype not in DTYPES:
    raise UserError(f"config.clip.dtype={clip_config.dtype!r}; use one of {', '.join(DTYPES)}")
  loaded = load_clip(clip_config.name, dtype=DTYPES[clip_config.dtype],
                     attention=clip_config.attention,
                     residual_dtype=DTYPES[resolve_residual_dtype(clip_config)])
  if image_size is not None:
    check_image_size(loaded, image_size, clip_config.name)
  return loaded


def check_image_size(loaded: LoadedCLIP, image_size: int, name: str) -> None:
  """UserError unless `config.render.image_size` is the CLIP's input size."""
  size = loaded.config.vision.image_size
  if size != image_size:
    raise UserError(f"config.render.image_size={image_size} but the CLIP at {name} takes "
                    f"{size}x{size} images")


def resolve_residual_dtype(clip_config) -> str:
  """config.clip.residual_dtype with "auto" read as the compute dtype."""
  if clip_config.residual_dtype == "auto":
    return clip_config.dtype
  if clip_config.residual_dtype not in DTYPES:
    raise UserError(f"config.clip.residual_dtype={clip_config.residual_dtype!r}; use auto or "
                    f"one of {', '.join(DTYPES)}")
  return clip_config.residual_dtype
