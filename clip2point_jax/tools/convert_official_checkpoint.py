"""Converts the authors' released CLIP2Point checkpoint into a depth encoder.

  python -m clip2point_jax.tools.convert_official_checkpoint best_eval.pth OUT_DIR

`best_eval.pth` is the `state_dict` of their `nn.DataParallel(CLIP2Point)`:
`module.point_model.*` is the trained depth encoder in OpenAI CLIP's
`visual.*` naming, `module.image_model.*` the frozen image encoder (skipped),
`module.weights` the loss's balance weight w, and `module.selector.*` the
view buffers (skipped). OUT_DIR becomes a checkpoint that zero-shot loads:

  python -m clip2point_jax.main --config configs/zeroshot.py:dataset=modelnet40_aligned \
      --config.depth_encoder=OUT_DIR

Needs torch (only this tool does); the file is read with `weights_only=True`.
"""

import argparse
import os
import re
from typing import Any

import numpy as np

from clip2point_jax.errors import UserError
from clip2point_jax.loading import depth_encoder

ENCODER_PREFIX = "point_model."
WEIGHTS_KEY = "weights"
SKIPPED_PREFIXES = ("image_model.", "selector.")
_BLOCK = re.compile(r"transformer\.resblocks\.(\d+)\.(.+)")


def read_state_dict(path: str) -> dict[str, np.ndarray]:
  """The tensors of a torch checkpoint as float32 numpy, `module.` stripped."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise UserError(f"{path}: converting a PyTorch checkpoint needs torch; pip install torch") from e
  if not os.path.isfile(path):
    raise UserError(f"{path}: no such file")
  try:
    loaded = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:  # pylint: disable=broad-except
    # torch raises pickle, zip and its own errors for unreadable files.
    raise UserError(f"{path}: cannot read it as a PyTorch checkpoint ({str(e)[:300]})") from e
  if isinstance(loaded, dict) and "state_dict" in loaded and isinstance(loaded["state_dict"], dict):
    loaded = loaded["state_dict"]
  if not isinstance(loaded, dict) or not all(hasattr(v, "detach") for v in loaded.values()):
    raise UserError(f"{path}: expected a state_dict of tensors (CLIP2Point's best_eval.pth)")
  return {k.removeprefix("module."): v.detach().float().cpu().numpy() for k, v in loaded.items()}


def openai_visual_to_flax(visual: dict[str, np.ndarray], source: str) -> dict[str, Any]:
  """OpenAI CLIP `visual.*` tensors (prefix removed) -> our encoder params.

  Returns:
    {"vision_model": ..., "visual_projection": {"kernel": ...}} in `clip.py`'s
    layout: torch Linear [out, in] becomes a kernel [in, out], the OIHW patch
    convolution HWIO, and each block's packed q/k/v projection three Dense.
  """
  used = set()

  def take(name, ndim=None):
    if name not in visual:
      raise UserError(f"{source}: {ENCODER_PREFIX}{name} is missing; not a CLIP ViT image encoder")
    used.add(name)
    value = visual[name]
    if ndim is not None and value.ndim != ndim:
      raise UserError(f"{source}: {ENCODER_PREFIX}{name} has shape {value.shape}, expected {ndim} axes")
    return value

  def linear(prefix):
    return {"kernel": take(f"{prefix}.weight", 2).T.copy(), "bias": take(f"{prefix}.bias", 1)}

  def norm(prefix):
    return {"scale": take(f"{prefix}.weight", 1), "bias": take(f"{prefix}.bias", 1)}

  blocks = sorted({int(m.group(1)) for k in visual if (m := _BLOCK.fullmatch(k))})
  if blocks != list(range(len(blocks))) or not blocks:
    raise UserError(f"{source}: {ENCODER_PREFIX}transformer.resblocks are numbered {blocks}; "
                    "expected 0, 1, ... with no gap")
  width = take("conv1.weight", 4).shape[0]
  layers = {}
  for i in blocks:
    p = f"transformer.resblocks.{i}"
    in_w, in_b = take(f"{p}.attn.in_proj_weight", 2), take(f"{p}.attn.in_proj_bias", 1)
    if in_w.shape != (3 * width, width) or in_b.shape != (3 * width,):
      raise UserError(f"{source}: {ENCODER_PREFIX}{p}.attn.in_proj_weight has shape {in_w.shape}; "
                      f"expected {(3 * width, width)} for width {width}")
    attention = {name: {"kernel": in_w[j * width:(j + 1) * width].T.copy(),
                        "bias": in_b[j * width:(j + 1) * width]}
                 for j, name in enumerate(("q_proj", "k_proj", "v_proj"))}
    attention["out_proj"] = linear(f"{p}.attn.out_proj")
    layers[f"layers_{i}"] = {
        "layer_norm1": norm(f"{p}.ln_1"), "self_attn": attention,
        "layer_norm2": norm(f"{p}.ln_2"),
        "mlp": {"fc1": linear(f"{p}.mlp.c_fc"), "fc2": linear(f"{p}.mlp.c_proj")}}
  params = {
      "vision_model": {
          "embeddings": {
              "patch_embedding": {"kernel": take("conv1.weight").transpose(2, 3, 1, 0).copy()},
              "class_embedding": take("class_embedding", 1),
              "position_embedding": {"embedding": take("positional_embedding", 2)},
          },
          "pre_layrnorm": norm("ln_pre"),
          "encoder": layers,
          "post_layernorm": norm("ln_post"),
      },
      # OpenAI multiplies by proj [width, dim]: already a kernel.
      "visual_projection": {"kernel": take("proj", 2)},
  }
  unused = sorted(set(visual) - used)
  if unused:
    raise UserError(f"{source}: unexpected encoder tensors {', '.join(ENCODER_PREFIX + k for k in unused[:5])}")
  return params


def convert(in_path: str, out_dir: str) -> str:
  """Writes the depth encoder of `in_path` as a checkpoint in `out_dir`."""
  state_dict = read_state_dict(in_path)
  visual = {k[len(ENCODER_PREFIX):]: v for k, v in state_dict.items() if k.startswith(ENCODER_PREFIX)}
  if not visual:
    raise UserError(f"{in_path}: no module.{ENCODER_PREFIX}* tensors; expected CLIP2Point's "
                    "pre-training checkpoint (best_eval.pth)")
  other = sorted(k for k in state_dict if not k.startswith((ENCODER_PREFIX, *SKIPPED_PREFIXES))
                 and k != WEIGHTS_KEY)
  if other:
    raise UserError(f"{in_path}: unexpected tensors {', '.join(other[:5])}")
  encoder = openai_visual_to_flax(visual, in_path)
  w = float(state_dict[WEIGHTS_KEY]) if WEIGHTS_KEY in state_dict else 1.0
  conv = encoder["vision_model"]["embeddings"]["patch_embedding"]["kernel"]
  meta = {"converted_from": os.path.abspath(in_path), "layers": len(encoder["vision_model"]["encoder"]),
          "width": int(conv.shape[-1]), "patch_size": int(conv.shape[0]),
          "projection_dim": int(encoder["visual_projection"]["kernel"].shape[1]), "w": w}
  return depth_encoder.save(out_dir, encoder, w=w, meta=meta)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("checkpoint", help="the authors' best_eval.pth")
  parser.add_argument("out_dir", help="a new folder for the converted depth encoder")
  args = parser.parse_args(argv)
  try:
    out = convert(args.checkpoint, args.out_dir)
  except UserError as e:
    raise SystemExit(f"error: {e}") from None
  print(f"wrote the depth encoder to {out}; use it with --config.depth_encoder={out}")


if __name__ == "__main__":
  main()
