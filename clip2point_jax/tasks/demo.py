"""The demo: zero-shot on the built-in shapes with a tiny random CLIP.

Everything it needs is made on the spot, so it runs offline on any machine.
"""

import os

from clip2point_jax.tasks import zeroshot
from clip2point_jax.tools import make_tiny_clip


def run(config, workdir: str) -> dict:
  """Makes (or reuses) `<workdir>/tiny_clip` unless config.clip.name is set."""
  if not config.clip.name:
    clip_dir = os.path.join(workdir, "tiny_clip")
    if not os.path.exists(os.path.join(clip_dir, "model.safetensors")):
      make_tiny_clip.write_tiny_clip(clip_dir, seed=config.seed)
    with config.unlocked():
      config.clip.name = clip_dir
    print(f"demo: using a tiny CLIP with RANDOM weights ({clip_dir}); expect "
          "accuracy near chance. Set --config.clip.name to a real CLIP checkpoint "
          "(e.g. openai/clip-vit-base-patch32) for meaningful numbers.")
  return zeroshot.run(config, workdir)
