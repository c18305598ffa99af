"""Writes a small random CLIP in exact Hugging Face format, for tests.

  python -m clip2point_jax.tools.make_tiny_clip OUTDIR [--seed N] [--image_size S]

The writer lives in `clip2point_jax/loading/tiny_clip.py`, where the tasks
that make their own tiny CLIP (empty `config.clip.name`) reach it too; this
is its command line, and keeps its names for existing callers.
"""

import argparse

from clip2point_jax.loading.tiny_clip import (  # pylint: disable=unused-import
    BOS_TOKEN, EOS_TOKEN, TINY_BOS_ID, TINY_EOS_ID, TINY_VOCAB_SIZE, byte_symbols,
    default_hf_config, default_patch_size, ensure_tiny_clip, write_tiny_clip)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("outdir")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--image_size", type=int, default=224,
                      help="input size; below 224 the patches are 16 px, else 32")
  args = parser.parse_args(argv)
  write_tiny_clip(args.outdir, seed=args.seed, vision_config={
      "image_size": args.image_size, "patch_size": default_patch_size(args.image_size)})
  print(args.outdir)


if __name__ == "__main__":
  main()
