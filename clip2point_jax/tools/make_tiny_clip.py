"""Writes a small random CLIP in exact Hugging Face format, for tests; or one of ViT-B/32's size.

  python -m clip2point_jax.tools.make_tiny_clip OUTDIR [--seed N] [--image_size S]
  python -m clip2point_jax.tools.make_tiny_clip OUTDIR --vit_b_32   # ~500 MB, for GPU benchmarks

The writer lives in `clip2point_jax/loading/tiny_clip.py`, where the tasks
that make their own tiny CLIP (empty `config.clip.name`) reach it too; this
is its command line, and keeps its names for existing callers.

`--vit_b_32` gives both towers the shapes of openai/clip-vit-base-patch32
(`VIT_B_32`), with random weights: what a task's speed depends on, offline.
Only the vocabulary stays the tiny byte-level one (514 tokens, not 49,408):
the text tower runs once per class list, so it does not change a task's
throughput, and the tiny tokenizer needs no download.
"""

import argparse

from clip2point_jax.loading.tiny_clip import (  # pylint: disable=unused-import
    BOS_TOKEN, EOS_TOKEN, TINY_BOS_ID, TINY_EOS_ID, TINY_VOCAB_SIZE, byte_symbols,
    default_hf_config, default_patch_size, ensure_tiny_clip, write_tiny_clip)

# `write_tiny_clip` overrides for openai/clip-vit-base-patch32's architecture
# (transformers' CLIPConfig defaults); vocab and special tokens stay tiny.
VIT_B_32 = {
    "vision_config": {"image_size": 224, "patch_size": 32, "hidden_size": 768,
                      "intermediate_size": 3072, "num_hidden_layers": 12,
                      "num_attention_heads": 12},
    "text_config": {"hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 12,
                    "num_attention_heads": 8},
    "projection_dim": 512,
}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("outdir")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--image_size", type=int, default=None,
                      help="input size (default 224); below 224 the patches are 16 px, else 32")
  parser.add_argument("--vit_b_32", action="store_true",
                      help="ViT-B/32's towers (224 px, 32 px patches) instead of the tiny ones")
  args = parser.parse_args(argv)
  if args.vit_b_32:
    if args.image_size not in (None, 224):
      parser.error("--vit_b_32 takes 224 px images; leave --image_size out")
    write_tiny_clip(args.outdir, seed=args.seed, **VIT_B_32)
  else:
    image_size = args.image_size or 224
    write_tiny_clip(args.outdir, seed=args.seed, vision_config={
        "image_size": image_size, "patch_size": default_patch_size(image_size)})
  print(args.outdir)


if __name__ == "__main__":
  main()
