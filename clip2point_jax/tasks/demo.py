"""The demo: pre-training, zero-shot and few-shot on the built-in shapes.

Everything it needs is made on the spot, so it runs offline on any machine.
Each step is the task a user would run, with its own folder in the workdir:

  1_pretrain/             image-depth pre-training (metrics.jsonl, learning_curves.png)
  2_zeroshot_clip/        zero-shot with CLIP's image tower
  3_zeroshot_pretrained/  zero-shot with the pre-trained depth encoder
  4_fewshot/              the GDPA adapter, 16 shots per class
  demo_summary.json       the accuracies side by side
"""

import os

from clip2point_jax.core import paths as storage  # `paths` names other things in tasks
from clip2point_jax.tasks import fewshot, pretrain, zeroshot
from clip2point_jax.loading import tiny_clip
from clip2point_jax.training import loop

STEPS = ("1_pretrain", "2_zeroshot_clip", "3_zeroshot_pretrained", "4_fewshot")


def _clip_name(config, workdir: str) -> str:
  """`config.clip_name`, or a tiny random CLIP made (once) in <workdir>/tiny_clip."""
  if config.clip_name:
    return config.clip_name
  clip_dir = tiny_clip.make_in_workdir(workdir, config.image_size, seed=config.seed,
                                      field="config.image_size")
  loop.say(tiny_clip.random_weights_line(
      "demo", clip_dir, field="clip_name",
      note=": zero-shot accuracy stays near chance, since its text tower knows no words; the "
           "few-shot adapter learns from labels"))
  return clip_dir


def _share(config, clip_name: str, data_dir: str) -> None:
  """Gives every step the demo's CLIP, dataset and rendering."""
  steps = (config.pretrain, config.zeroshot, config.fewshot)
  data_blocks = [s.data for s in steps] + [e.data for e in config.pretrain.evals.values()]
  with config.unlocked():
    for step in steps:
      step.clip.name = clip_name
      # The tiny CLIP is for CPUs, which lack fast bf16 matmuls; a real one runs
      # as the full-size presets do.
      step.clip.dtype = "bfloat16" if config.clip_name else "float32"
      step.render.image_size = config.image_size
      step.render.radius = config.radius
      step.seed = config.seed
    for data in data_blocks:
      data.data_dir = data_dir
      data.primitives = _copy(config.primitives)
      data.num_points = config.num_points


def _copy(block):
  """A fresh copy of a ConfigDict block, so the steps don't share one object."""
  return type(block)(block.to_dict())


def run(config, workdir: str) -> dict:
  """Runs the four steps; returns and writes their accuracies side by side."""
  # 1. Mesh: each step makes its own. 2. Data and 3. model: one dataset and
  # one CLIP for every step.
  clip_name = _clip_name(config, workdir)
  _share(config, clip_name, os.path.join(storage.absolute(workdir), "tensorflow_datasets"))
  folders = {name: os.path.join(workdir, name) for name in STEPS}

  # 4.-7. The steps are the tasks themselves (each restores its own workdir);
  # the pre-trained depth encoder feeds the later ones.
  pre = pretrain.run(config.pretrain, folders["1_pretrain"])
  plain = zeroshot.run(config.zeroshot, folders["2_zeroshot_clip"])
  with config.unlocked():
    config.zeroshot.depth_encoder = folders["1_pretrain"]
    config.fewshot.depth_encoder = folders["1_pretrain"]
  trained = zeroshot.run(config.zeroshot, folders["3_zeroshot_pretrained"])
  few = fewshot.run(config.fewshot, folders["4_fewshot"])

  summary = {
      "clip": clip_name,
      "random_weights": not config.clip_name,
      "chance_accuracy": plain["chance_accuracy"],
      "pretrain": {"steps": pre["steps"], "first_loss": pre["first_loss"],
                   "final_loss": pre["final_loss"]},
      "zeroshot_clip_top1": plain["top1_accuracy"],
      "zeroshot_pretrained_top1": trained["top1_accuracy"],
      "fewshot_top1": few["aggregate"]["top1_accuracy"]["mean"],
      "fewshot_shots": config.fewshot.shots,
      "folders": folders,
  }
  if loop.is_host0():
    storage.write_json(os.path.join(workdir, "demo_summary.json"), summary, indent=2)
    _print(summary)
  return summary


def _print(s: dict) -> None:
  pct = lambda x: f"{100 * x:5.1f}%"
  weights = "a tiny CLIP with RANDOM weights" if s["random_weights"] else s["clip"]
  print(f"\ndemo summary ({weights}; chance {pct(s['chance_accuracy'])}):")
  print(f"  pre-training, {s['pretrain']['steps']} steps: loss {s['pretrain']['first_loss']:.3f} -> "
        f"{s['pretrain']['final_loss']:.3f}")
  print(f"  zero-shot, CLIP's image tower          top-1 {pct(s['zeroshot_clip_top1'])}")
  print(f"  zero-shot, pre-trained depth encoder   top-1 {pct(s['zeroshot_pretrained_top1'])}")
  print(f"  {s['fewshot_shots']}-shot GDPA (pre-trained + CLIP)    top-1 {pct(s['fewshot_top1'])}")
  if s["random_weights"]:
    print("  Zero-shot needs CLIP's text tower to know the class names, so random weights stay near "
          "chance; the adapter learns from labels.")
