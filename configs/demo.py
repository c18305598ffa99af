"""The demo: zero-shot classification of built-in shapes, no download needed.

  python -m clip2point_jax.main --config configs/demo.py --workdir runs/demo

It prepares the built-in procedural shapes as a TFDS dataset in the workdir,
writes a tiny random CLIP in Hugging Face format there (or reuses both),
renders the shapes to depth maps and classifies them. With random weights the
accuracy is near chance; point `--config.clip.name` at a real CLIP (e.g.
openai/clip-vit-base-patch32) for real numbers.
"""

import ml_collections

from clip2point_jax.config_args import load_sibling, parse_arg

zeroshot = load_sibling(__file__, "zeroshot")


def get_config(arg=None):
  a = parse_arg(arg, tiny=False)
  c = zeroshot.get_config("dataset=primitives" + (",tiny" if a["tiny"] else ""))
  c.task = "demo"
  c.clip.name = ""  # empty: a tiny random CLIP in <workdir>/tiny_clip
  c.data.data_dir = ""  # <workdir>/tensorflow_datasets
  if not a["tiny"]:
    # The demo classifies depth maps only: it skips rendering the RGB views.
    c.data.primitives = ml_collections.ConfigDict(dict(
        num_per_class_train=16, num_per_class_test=12, num_points_stored=1024,
        render_images=False))
  return c
