"""A tiny ShapeNet-55 release with renderings, in the exact on-disk formats, for pre-training tests.

Clouds are built-in primitives filed under ShapeNet synsets; each shape's ten
"renderings" are its own depth maps from the `VIEWS_PRETRAIN` poses, tinted
per class, so the RGB view of a shape really shows that shape from that pose.
"""

import os

import numpy as np
from PIL import Image

from clip2point_jax.data import primitives, registry, shapenet_classes
from clip2point_jax.data import pretrain_data
from renderers import points as projector
from tests.conftest import REPO_ROOT, set_fields, task_config


_TINTS = np.array([[1.0, 0.3, 0.3], [0.3, 1.0, 0.3], [0.3, 0.3, 1.0], [1.0, 1.0, 0.3],
                   [1.0, 0.3, 1.0], [0.3, 1.0, 1.0], [0.6, 0.6, 0.6], [1.0, 0.6, 0.2]])


def _renderings(cloud: np.ndarray, label: int, size: int) -> list[np.ndarray]:
  depth = np.asarray(projector.render_depth(projector.normalize_points(cloud[None]),
                                            pretrain_data.VIEWS, image_size=size, radius=0.06))[0]
  rgb = 1.0 - (1.0 - depth[..., None]) * _TINTS[label]  # white background, tinted shape
  return [(255 * np.clip(v, 0, 1)).astype(np.uint8) for v in rgb]


def write_manual_dir(root: str, *, num_classes: int = 4, per_class: dict = None,
                     num_points: int = 512, image_size: int = 32, unrendered: int = 1) -> str:
  """Point-BERT's ShapeNet55-34 layout plus CLIP2Point's rendering/ folder under `root`.

  Args:
    per_class: shapes per class and split, default {"train": 4, "test": 2}.
    unrendered: train shapes (of class 0) that get no rendering folder.

  Returns:
    The manual_dir to prepare `shapenet55` from.
  """
  per_class = per_class or {"train": 4, "test": 2}
  base = os.path.join(root, "ShapeNet55-34")
  os.makedirs(os.path.join(base, "ShapeNet-55"), exist_ok=True)
  os.makedirs(os.path.join(base, "shapenet_pc"), exist_ok=True)
  for split_index, (split, count) in enumerate(per_class.items()):
    clouds, labels = primitives.generate(count, num_points, seed=10 + split_index)
    keep = labels < num_classes
    names = []
    for i, (cloud, label) in enumerate(zip(clouds[keep], labels[keep])):
      shape_id = f"{shapenet_classes.SYNSET_NAMES[label][0]}-{split}{i:04d}"
      names.append(shape_id)
      np.save(os.path.join(base, "shapenet_pc", f"{shape_id}.npy"), cloud)
      if split == "train" and i < unrendered:
        continue
      folder = os.path.join(base, "rendering", shape_id.replace("-", "_", 1))
      os.makedirs(folder, exist_ok=True)
      for v, image in enumerate(_renderings(cloud, int(label), image_size)):
        Image.fromarray(image).save(os.path.join(folder, f"{v}.png"))
    with open(os.path.join(base, "ShapeNet-55", f"{split}.txt"), "w") as f:
      f.writelines(f"{n}.npy\n" for n in names)
  return root


def prepare(root: str, **kwargs) -> str:
  """Writes the release under root/manual and prepares it into root/tfds; returns the data dir."""
  manual = write_manual_dir(os.path.join(root, "manual"), **kwargs)
  data_dir = os.path.join(root, "tfds")
  registry.prepare("shapenet55", data_dir, manual, num_points_stored=kwargs.get("num_points", 512))
  return data_dir


def _fixture_fields(data_dir: str, clip_dir: str) -> dict:
  """The dotted fields that point configs/pretrain.py:tiny at the prepared fixture."""
  fields = {"clip.name": clip_dir, "clip.dtype": "float32",  # exact comparisons
            "data.name": "shapenet55", "data.data_dir": data_dir, "data.num_points": 128,
            "batch_size": 8}
  for name in ("val", "downstream"):
    fields.update({f"evals.{name}.data.name": "shapenet55", f"evals.{name}.data.data_dir": data_dir,
                   f"evals.{name}.data.num_points": 128, f"evals.{name}.batch_size": 8})
  return fields


def tiny_config(data_dir: str, clip_dir: str, **overrides):
  """configs/pretrain.py:tiny on the prepared fixture; overrides are dotted field=value."""
  return set_fields(task_config("pretrain", "tiny"), **{**_fixture_fields(data_dir, clip_dir), **overrides})


def cli_config(data_dir: str, clip_dir: str, **overrides):
  """`tiny_config`, but from `--config.<field>=<value>` flags parsed as the command line does.

  The config comes back locked, so an override naming a field the config
  lacks fails here, as it would for a user.
  """
  from absl import flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  fields = {**_fixture_fields(data_dir, clip_dir), **overrides}
  argv = ["pretrain", f"--config={os.path.join(REPO_ROOT, 'configs', 'pretrain.py')}:tiny",
          *(f"--config.{k}={v}" for k, v in fields.items())]
  values = flags.FlagValues()
  # The overrides are read from sys_argv when the config flag is parsed.
  config_flags.DEFINE_config_file("config", None, "pre-training config", flag_values=values,
                                  lock_config=True, sys_argv=argv)
  values(argv)
  return values.config


def zeroshot_config(data_dir: str, clip_dir: str, **overrides):
  """configs/zeroshot.py:tiny on the fixture's test split, rendered as the tiny pre-training does."""
  from clip2point_jax.core.config_args import load_sibling  # pylint: disable=g-import-not-at-top
  repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  config = load_sibling(os.path.join(repo, "configs", "x.py"), "zeroshot").get_config(
      "dataset=shapenet55,tiny")
  with config.unlocked():
    config.clip.name = clip_dir
    config.data.data_dir = data_dir
    config.data.num_points = 128
    config.render.image_size = 64
    config.render.radius = 0.06
    config.num_grid_clouds = 0
    for key, value in overrides.items():
      config[key] = value
  return config
