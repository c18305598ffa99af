"""bench/bench_e2e.py: its tiny run end to end on the CPU (real commands, tiny CLIP, tiny data),
its full-size commands' configs, and how it reads what a run wrote."""

import json

import pytest

from bench import bench_e2e
from clip2point_jax import validation

ROWS = ["pretrain steps", "pretrain window", "zeroshot", "zeroshot, library", "fewshot caching train",
        "fewshot caching test", "fewshot training", "detect"]
# The plain configs the full-size commands stand for, and the only fields they may change.
PLAIN = {"pretrain": "configs/pretrain.py", "zeroshot": "configs/zeroshot.py:dataset=primitives",
         "fewshot": "configs/fewshot.py:dataset=primitives,shots=16",
         "detect": "configs/detect.py:dataset=synthetic"}
_PRIMITIVES = {f"primitives.{k}" for k in ("num_per_class_train", "num_per_class_test", "num_points_stored")}
INTENDED = {
    "pretrain": {"clip.name", "clip.tiny_patch_size", "data.name", "data.data_dir", "num_steps",
                 "eval_every_steps"}
                | {f"data.{p}" for p in _PRIMITIVES}
                | {f"evals.{e}.data.{f}" for e in ("val", "downstream")
                   for f in {"name", "align_modelnet"} | _PRIMITIVES}
                # The tiny preset's 3D encoder: unused by the depth encoder this run trains.
                | {f"point_transformer.{f}" for f in ("dtype", "blocks", "planes", "strides", "neighbours")},
    "zeroshot": {"clip.name", "data.data_dir", "batch_size", "data.primitives.render_images"}
                | {f"data.{p}" for p in _PRIMITIVES},
    "fewshot": {"clip.name", "data.data_dir"},
    "detect": {"clip.name", "batch_size", "num_plot_scenes", "data.synthetic.num_scenes",
               "data.synthetic.num_objects"},
}


def _flat(tree, prefix=""):
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      out.update(_flat(value, f"{prefix}{key}."))
    else:
      out[f"{prefix}{key}"] = value
  return out


@pytest.mark.parametrize("task", bench_e2e.TASKS)
def test_full_size_commands_differ_from_the_plain_configs_only_in_data_clip_and_schedule(
    task, tiny_clip_dir, tmp_path):
  spec, overrides = bench_e2e.task_configs(bench_e2e.FULL, tiny_clip_dir, str(tmp_path))[task]
  config = bench_e2e.load_config(spec, overrides)
  validation.check_task(config)  # the rules the command line checks first
  ours, plain = _flat(config.to_dict()), _flat(bench_e2e.load_config(PLAIN[task], {}).to_dict())
  changed = {k for k in set(ours) | set(plain) if ours.get(k, KeyError) != plain.get(k, KeyError)}
  assert changed <= INTENDED[task], sorted(changed - INTENDED[task])
  assert config.clip.name == tiny_clip_dir


def test_flags_are_what_config_flags_parses():
  assert bench_e2e.flag("seeds", (0,)) == "--config.seeds=(0,)"
  assert bench_e2e.flag("render.radius", 0.02) == "--config.render.radius=0.02"
  assert bench_e2e.flag("data.primitives.render_images", False) == "--config.data.primitives.render_images=False"


def _stamped(records):
  return bench_e2e.Command("pretrain", returncode=0, stamps=[(float(t), r) for t, r in records])


def test_pretrain_rates_from_interval_records_and_the_window_around_the_evaluation():
  command = _stamped([
      (10, {"step": 20, "loss": 1.0, "samples_per_second": 190.0, "step_seconds": 0.1,
            "compile_seconds": 30.0}),
      (12, {"step": 40, "loss": 1.0, "samples_per_second": 200.0, "step_seconds": 0.1}),
      (13, {"step": 40, "val_top1": 0.5}),
      (16, {"step": 60, "loss": 1.0, "samples_per_second": 100.0, "step_seconds": 0.2})])
  p = bench_e2e.pretrain_figures(command, batch=10)
  # Samples over seconds: steps 2-20 (19, the first compiles), 21-40 and 41-60, each at its own rate.
  assert p["steps"] == pytest.approx(590 / (190 / 190 + 200 / 200 + 200 / 100))
  assert p["window"] == pytest.approx(40 * 10 / 6) and p["evals_inside"] == 1
  assert p["compile_s"] == 30.0 and p["window_steps"] == (20, 60)


def test_a_field_the_run_did_not_write_is_named_not_fatal(tmp_path):
  p = bench_e2e.pretrain_figures(_stamped([(1, {"step": 5, "loss": 1.0}), (2, {"step": 10, "loss": 1.0})]),
                                 batch=8)
  assert p["steps"] is None and p["steps_note"] == "n/a (field samples_per_second missing)"
  assert p["compile_note"] == "n/a (field compile_seconds missing)" and p["window"] == pytest.approx(40.0)
  f = bench_e2e.fewshot_figures({"per_seed": {"0": {"train_throughput": {"compile_seconds": 2.0}}},
                                 "feature_cache": {"train": {"cached": True}}})
  assert f["epochs"] == (None, "n/a (field train_throughput.epochs_per_second missing)")
  assert f["train_compile"] == (2.0, None)
  assert f["cache_train"][1] == "n/a (the train features came from a cache)"
  assert f["cache_test"][1] == "n/a (field feature_cache.test.clouds_per_second missing)"
  row = bench_e2e.Row("detect", "crops/s", None, "n/a (field crops_per_second missing)", step=10.0)
  assert row.fraction is None and row.cells()[2] == "n/a (field crops_per_second missing)"


def test_tiny_run_of_every_command_and_its_step_alone(tmp_path, capsys):
  out = tmp_path / "out"
  rows, commands = bench_e2e.main(["--tiny", "--root", str(tmp_path / "root"), "--out", str(out)])
  printed = capsys.readouterr().out
  assert [c.name for c in commands] == ["write CLIP", "prepare set A", "prepare set B", *bench_e2e.TASKS]
  assert all(c.ok for c in commands), printed
  assert [r.task for r in rows] == ROWS
  for r in rows:  # Every figure read from its run, every step-only figure measured.
    assert r.command is not None and r.command > 0, (r, printed)
    assert r.step is not None and r.step > 0, (r, printed)
    assert r.fraction == pytest.approx(r.command / r.step)
    assert r.command_compile is not None and r.command_compile >= 0, r
  window = rows[1].comment
  assert window == "steps 5-20, 1 evaluation(s) and checkpoint inside", window
  saved = json.loads((out / "e2e.json").read_text())
  assert [r["task"] for r in saved["rows"]] == ROWS and all(r["fraction"] > 0 for r in saved["rows"])
  table = (out / "e2e.md").read_text()
  assert "| pretrain window | samples/s |" in table and "| zeroshot, library | clouds/s |" in table
  assert printed.count("% ok") + printed.count("% below") >= len(ROWS)
