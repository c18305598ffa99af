"""A GDPA or linear-probe run over its seeds: aggregated, written to the workdir, summarised.

    result = gdpa_report.summarize(config, per_seed, class_names, trainable_shapes,
                                   feature_cache=feature_cache)
    gdpa_report.write_outputs(config, workdir, result)   # host 0: metrics.json, two plots, a summary

Throughput, in `<workdir>/metrics.json` (what benchmarks read; rates are
steady, the first, compiling, unit timed apart):

    per_seed.<s>.train_throughput   {"compile_seconds": the seed's first epoch,
                                     "steps_per_second", "samples_per_second",
                                     "epochs_per_second": over the epochs after
                                     the first; null where one epoch ran}
    aggregate.train_throughput      the first seed's compile_seconds (the steps
                                    compile once per run), each rate's mean
                                    over the seeds that have one
    feature_cache.train / .test     {"cached": false, "num_clouds", "seconds",
                                     "compile_seconds" (first batch),
                                     "clouds_per_second" (after it),
                                     "clouds_per_second_overall"} of a caching
                                    pass, or {"cached": true} where the
                                    features were read from the cache
"""

import os

import numpy as np

from clip2point_jax.core import paths, plots
from clip2point_jax.models import gdpa
from clip2point_jax.training import loop


def aggregate(per_seed: dict, class_names) -> dict:
  """Mean and standard deviation (ddof=1; None for one seed) of each seed's test accuracies.

  Args:
    per_seed: {"<seed>": `gdpa_run.train_one_seed`'s metrics}.
    class_names: the C class names.

  Returns:
    {"aggregate": {...}, "per_seed": per_seed, "class_names": [...]}.
  """
  def stats(values):
    values = np.asarray(values, np.float64)
    # One seed has no spread to measure: None, not a misleading 0.
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else None}

  runs = list(per_seed.values())
  result = {key: stats([r[key] for r in runs])
            for key in ("top1_accuracy", "top5_accuracy", "mean_class_accuracy")}
  per_class = {}
  for name in class_names:
    values = [r["per_class_accuracy"][name] for r in runs if r["per_class_accuracy"][name] is not None]
    per_class[name] = float(np.mean(values)) if values else None
  aggregated = {"num_seeds": len(runs), **result, "per_class_accuracy_mean": per_class,
                "confusion_matrix_sum": np.sum([r["confusion_matrix"] for r in runs], 0).tolist()}
  aggregated["train_throughput"] = mean_throughput([r.get("train_throughput") for r in runs])
  if all("best_val_epoch" in r for r in runs):
    aggregated["test_top1_at_best_val_epoch"] = stats(
        [r["best_val_epoch"]["test_top1_accuracy"] for r in runs])
  return {"aggregate": aggregated, "per_seed": per_seed, "class_names": list(class_names)}


def mean_throughput(per_seed: list) -> dict:
  """The run's training throughput from its seeds' (`gdpa_run.train_throughput`; None where absent).

  compile_seconds is the first seed's, the one that compiled the steps; a
  rate is the mean over the seeds that measured one, None where none did.
  """
  seeds = [t for t in per_seed if t]
  out = {"compile_seconds": seeds[0]["compile_seconds"] if seeds else None}
  for key in ("steps_per_second", "samples_per_second", "epochs_per_second"):
    values = [t[key] for t in seeds if t.get(key) is not None]
    out[key] = float(np.mean(values)) if values else None
  return out


def percent(stat: dict, digits: int = 2) -> str:
  """"45.00 ± 1.20%" for a {"mean", "std"} of fractions; the mean alone, "45.00%", where std is None."""
  if stat["std"] is None:
    return f"{100 * stat['mean']:.{digits}f}%"
  return f"{100 * stat['mean']:.{digits}f} ± {100 * stat['std']:.{digits}f}%"


def shots_label(shots: int, per_class) -> str:
  """"16-shot", "supervised", or "100-shot (min 16 / max 100 per class)" where classes had fewer."""
  if not shots:
    return "supervised"
  low, high = min(per_class), max(per_class)
  return f"{shots}-shot" if low == high == shots else f"{shots}-shot (min {low} / max {high} per class)"


# config.model.kind -> what the console and plots call it.
MODEL_NAMES = {"gdpa": "GDPA", "linear_probe": "linear probe"}


def model_name(config) -> str:
  """"GDPA" or "linear probe", as `config.model.kind` says."""
  return MODEL_NAMES[gdpa.kind_of(config.model)]


def summarize(config, per_seed: dict, class_names, trainable_shapes, feature_cache=None) -> dict:
  """`aggregate` plus the run's settings: the dict `metrics.json` holds.

  `shots` is what was asked; `shots_per_class` what the first seed trained on
  (every seed draws the same counts), and `shots_label` says both.
  `model_kind` and `render_mode` say which model on which projection, so runs
  can be compared across both. `trainable_params` counts what the seeds
  trained (a linear probe's layer depends on the class count), else
  `trainable_shapes`. `feature_cache` ({"train", "test"}: each caching pass's
  throughput or {"cached": True}) is recorded as it is.
  """
  result = aggregate(per_seed, class_names)
  per_class = next(iter(per_seed.values()))["shots_per_class"]
  result.update(shots_per_class=per_class, shots_label=shots_label(config.shots, per_class.values()))
  result.update(task=config.task, dataset=config.data.name, shots=config.shots or "all",
                seeds=[int(s) for s in config.seeds], epochs=config.epochs, augment=config.augment,
                model_kind=gdpa.kind_of(config.model), render_mode=config.render.get("mode", "hard"),
                fusion=config.model.fusion if gdpa.kind_of(config.model) == "gdpa" else None,
                clip=config.clip.name,
                depth_encoder=config.depth_encoder or "(CLIP's own image tower)",
                trainable_params=next(iter(per_seed.values())).get(
                    "trainable_params", gdpa.count_params(trainable_shapes)),
                feature_cache=feature_cache or {},
                model_selection="final epoch" + (" (and, labelled, the best epoch on the validation "
                                                  "split carved out of train)" if config.val_fraction else ""))
  return result


def write_outputs(config, workdir: str, result: dict) -> None:
  """metrics.json, confusion_matrix.png (summed over seeds), learning_curves.png and a summary (host 0)."""
  if not loop.is_host0():
    return
  class_names = result["class_names"]
  paths.write_json(os.path.join(workdir, "metrics.json"), result, indent=2)
  agg = result["aggregate"]
  top1 = agg["top1_accuracy"]
  what = result["shots_label"]
  seeds = "1 seed" if agg["num_seeds"] == 1 else f"{agg['num_seeds']} seeds, summed"
  plots.save_confusion_matrix(
      np.asarray(agg["confusion_matrix_sum"]), class_names, os.path.join(workdir, "confusion_matrix.png"),
      title=f"{model_name(config)} {what} {config.data.name}: top-1 {percent(top1, 1)} ({seeds})")
  panels = {"training loss": {}, "training top-1": {}}
  for seed, r in result["per_seed"].items():
    panels["training loss"][f"seed {seed}"] = r["curves"]["loss"]
    panels["training top-1"][f"seed {seed}"] = r["curves"]["train_top1"]
    if r["curves"]["val_top1"]:
      panels.setdefault("validation top-1 (carved out of train)", {})[f"seed {seed}"] = r["curves"]["val_top1"]
  plots.save_curve_panels(panels, os.path.join(workdir, "learning_curves.png"), xlabel="epoch")
  chance = 100.0 / len(class_names)
  setting = (f"fusion={config.model.fusion}" if result["fusion"]
             else f"{result['trainable_params']:,} parameters")
  loop.say(f"\n{model_name(config)} {what} {config.data.name}, {config.epochs} epochs, {setting}, "
           f"render.mode={result['render_mode']}:")
  for seed, r in result["per_seed"].items():
    line = (f"  seed {seed}: {r['num_train']} training clouds, final-epoch test top-1 "
            f"{100 * r['top1_accuracy']:.2f}%  mean class {100 * r['mean_class_accuracy']:.2f}%  "
            f"({r['train_seconds']:.1f} s{_speed(r.get('train_throughput'))})")
    if "best_val_epoch" in r:
      b = r["best_val_epoch"]
      line += f"; at best validation epoch {b['epoch']}: test top-1 {100 * b['test_top1_accuracy']:.2f}%"
    loop.say(line)
  mean_class = agg["mean_class_accuracy"]
  over = "1 seed" if agg["num_seeds"] == 1 else f"{agg['num_seeds']} seeds"
  loop.say(f"  over {over}: top-1 {percent(top1)}   mean class {percent(mean_class)}   (chance {chance:.2f}%)")
  loop.say(f"  wrote metrics.json, confusion_matrix.png, learning_curves.png and seed_*/checkpoints to {workdir}")


def _speed(t) -> str:
  """", 85.2 steps/s after a first epoch of 3.1 s" from a seed's train_throughput; "" without a rate."""
  if not t or t.get("steps_per_second") is None:
    return ""
  return f", {t['steps_per_second']:.1f} steps/s after a first epoch of {t['compile_seconds']:.1f} s"
