"""The demo: zero-shot classification of built-in shapes, no download needed.

  python -m clip2point_jax.main --config configs/demo.py --workdir runs/demo

It writes a tiny random CLIP in Hugging Face format into the workdir (or reuses
it), renders the built-in procedural shapes to depth maps and classifies them.
With random weights accuracy is near chance; point `--config.clip.name` at a
real CLIP (e.g. openai/clip-vit-base-patch32) for real numbers.
"""

from clip2point_jax.config_args import load_sibling, parse_arg

zeroshot = load_sibling(__file__, "zeroshot")


def get_config(arg=None):
  a = parse_arg(arg, tiny=False)
  c = zeroshot.get_config("dataset=primitives" + (",tiny" if a["tiny"] else ""))
  c.task = "demo"
  c.clip.name = ""  # empty: a tiny random CLIP in <workdir>/tiny_clip
  c.data.num_per_class = 12 if not a["tiny"] else 2
  return c
