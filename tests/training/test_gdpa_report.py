"""The few-shot report: no spread from one seed, and the shots each class really trained on."""

import json

import ml_collections
import numpy as np

from clip2point_jax.training import gdpa_report, metrics

CLASSES = ("a", "b", "c")


def _config(shots, seeds):
  return ml_collections.ConfigDict(dict(
      task="fewshot", shots=shots, seeds=seeds, epochs=2, augment=False, val_fraction=0.0,
      data=dict(name="tinyset"), model=dict(fusion="gate"), clip=dict(name="tiny"), depth_encoder="",
      render=dict(mode="hard")))


def _seed(seed, per_class):
  rng = np.random.default_rng(seed)
  labels = np.repeat(np.arange(3), 4)
  result = metrics.classification_metrics(rng.normal(size=(12, 3)), labels, CLASSES)
  result.update(seed=seed, num_train=int(sum(per_class)), num_val=0, batch_size=4, steps=2, train_seconds=0.1,
                selected="final epoch", curves={"loss": [[1, 1.0], [2, 0.9]], "train_top1": [[1, 0.3], [2, 0.4]],
                                                "val_top1": []},
                shots_per_class=dict(zip(CLASSES, per_class)))
  return result


def _report(tmp_path, capsys, shots, seeds, per_class):
  config = _config(shots, seeds)
  result = gdpa_report.summarize(config, {str(s): _seed(s, per_class) for s in seeds}, CLASSES, {})
  gdpa_report.write_outputs(config, str(tmp_path), result)
  return json.loads((tmp_path / "metrics.json").read_text()), capsys.readouterr().out


def test_one_seed_reports_the_mean_alone_and_a_null_std(tmp_path, capsys):
  written, out = _report(tmp_path, capsys, 4, (0,), (4, 4, 4))
  top1 = written["aggregate"]["top1_accuracy"]
  assert top1["std"] is None and written["aggregate"]["mean_class_accuracy"]["std"] is None
  assert f"over 1 seed: top-1 {100 * top1['mean']:.2f}%   mean class" in out
  assert "±" not in out and written["shots_label"] == "4-shot" and written["shots"] == 4


def test_several_seeds_report_mean_and_std(tmp_path, capsys):
  written, out = _report(tmp_path, capsys, 4, (0, 1, 2), (4, 4, 4))
  top1 = written["aggregate"]["top1_accuracy"]
  assert top1["std"] > 0 and f"over 3 seeds: top-1 {100 * top1['mean']:.2f} ± {100 * top1['std']:.2f}%" in out


def test_classes_short_of_shots_are_labelled_with_what_they_gave(tmp_path, capsys):
  written, out = _report(tmp_path, capsys, 100, (0,), (16, 100, 40))
  assert written["shots"] == 100 and written["shots_per_class"] == {"a": 16, "b": 100, "c": 40}
  assert written["shots_label"] == "100-shot (min 16 / max 100 per class)"
  assert "GDPA 100-shot (min 16 / max 100 per class) tinyset" in out
  assert gdpa_report.shots_label(0, [3, 5]) == "supervised"
