"""The zero-shot task end to end, and the CLI's error handling."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from clip2point_jax.core.config_args import load_sibling
from clip2point_jax.tasks import zeroshot

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = os.path.join(REPO, "configs")


def _config(name, arg):
  return load_sibling(os.path.join(CONFIGS, "x.py"), name).get_config(arg)


def test_zeroshot_on_a_folder_of_files(tmp_path, tiny_clip_dir):
  rng = np.random.default_rng(0)
  for cls in ("chair", "lamp"):
    os.makedirs(tmp_path / "clouds" / cls)
    for i in range(3):
      np.save(tmp_path / "clouds" / cls / f"{cls}_{i}.npy", rng.normal(size=(200 + i, 3)).astype(np.float32))
  np.savetxt(tmp_path / "clouds" / "lamp" / "extra.xyz", rng.normal(size=(150, 3)))
  config = _config("zeroshot", "dataset=files,tiny")
  with config.unlocked():
    config.data.files = str(tmp_path / "clouds" / "*" / "*")
    config.clip.name = tiny_clip_dir
    config.batch_size = 4  # 7 files: the last batch is padded.
  result = zeroshot.run(config, str(tmp_path / "out"))
  assert result["num_examples"] == 7
  assert result["class_names"] == ["chair", "lamp"]
  assert np.asarray(result["confusion_matrix"]).sum(1).tolist() == [3, 4]
  _check_throughput(json.loads((tmp_path / "out" / "metrics.json").read_text()), one_batch=False)


def _check_throughput(written, one_batch):
  """The timing fields the end-to-end benchmark reads (issue #26): compiling apart from the steady rate."""
  assert written["compile_seconds"] > 0 and written["seconds"] >= written["compile_seconds"]
  assert written["clouds_per_second"] > 0
  overall = written["num_examples"] / written["seconds"]
  assert written["clouds_per_second_overall"] == pytest.approx(overall)
  if one_batch:  # no steady batches: the whole pass's rate, labelled
    assert written["clouds_per_second"] == written["clouds_per_second_overall"]
    assert "compiling included" in written["clouds_per_second_note"]
  else:
    assert "clouds_per_second_note" not in written


def _cli(*args, timeout=300):
  return subprocess.run([sys.executable, "-m", "clip2point_jax.main", *args], cwd=REPO,
                        capture_output=True, text=True, timeout=timeout,
                        env={**os.environ, "JAX_PLATFORMS": "cpu"})


@pytest.mark.parametrize("args,message", [
    (["--config", "configs/zeroshot.py:tiny", "--config.data.num_pointz=5"],
     "the config has no field 'num_pointz'; did you mean 'num_points'?"),
    (["--config", "configs/zeroshot.py:tiny,datset=x"], "unknown config argument 'datset'"),
    (["--config", "configs/nope.py"], "cannot load config file configs/nope.py"),
    (["--config", "configs/zeroshot.py:dataset=primitives,tiny", "--config.clip.name=/no/such/clip"],
     "/no/such/clip"),
    (["--config", "configs/zeroshot.py:dataset=modelnet40,tiny"],
     "configs/prepare.py:dataset=modelnet40"),
])
def test_cli_mistakes_end_in_one_clear_line(tmp_path, args, message):
  proc = _cli(*args, "--workdir", str(tmp_path), f"--config.data.data_dir={tmp_path}/tfds")
  assert proc.returncode != 0
  assert "Traceback" not in proc.stderr
  assert proc.stderr.count("error: ") == 1, proc.stderr
  assert message in proc.stderr[proc.stderr.index("error: "):], proc.stderr


def test_classify_own_files_prints_a_table_and_writes_json(tmp_path, tiny_clip_dir, capsys):
  from clip2point_jax.tasks import classify
  import trimesh
  rng = np.random.default_rng(1)
  np.save(tmp_path / "a.npy", rng.normal(size=(300, 3)).astype(np.float32))
  np.savetxt(tmp_path / "b.xyz", rng.normal(size=(120, 3)))
  trimesh.creation.box(extents=(1.0, 0.5, 2.0)).export(tmp_path / "c.ply")
  config = _config("classify", "tiny")
  with config.unlocked():
    config.inputs = f"{tmp_path}/*.npy,{tmp_path}/*.xyz,{tmp_path}/*.ply"
    config.classes = "chair, table ,lamp"
    config.clip.name = tiny_clip_dir
  results = classify.run(config, str(tmp_path / "out"))
  assert [os.path.basename(r["file"]) for r in results] == ["a.npy", "b.xyz", "c.ply"]
  for r in results:
    probs = [p for _, p in r["predictions"]]
    assert sorted(probs, reverse=True) == probs and 0.99 < sum(probs) <= 1.0 + 1e-6
    assert {c for c, _ in r["predictions"]} == {"chair", "table", "lamp"}
  written = json.loads((tmp_path / "out" / "predictions.json").read_text())
  assert written["classes"] == ["chair", "table", "lamp"] and len(written["results"]) == 3
  assert "c.ply" in capsys.readouterr().out


def test_classify_rejects_bad_input_naming_it(tmp_path, tiny_clip_dir):
  from clip2point_jax.errors import UserError
  from clip2point_jax.tasks import classify
  (tmp_path / "broken.npy").write_bytes(b"not a numpy file")
  config = _config("classify", "tiny")
  with config.unlocked():
    config.inputs = str(tmp_path / "*.npy")
    config.classes = "chair,lamp"
    config.clip.name = tiny_clip_dir
  with pytest.raises(UserError, match="broken.npy"):
    classify.run(config, str(tmp_path / "out"))
  with config.unlocked():
    config.classes = "chair"
  with pytest.raises(UserError, match="at least two"):
    classify.run(config, str(tmp_path / "out"))


def test_zeroshot_on_a_prepared_modelnet40(tmp_path, tiny_clip_dir):
  from tests.data import data_fixtures as fx
  from clip2point_jax.data import classnames
  from clip2point_jax.data import registry
  from clip2point_jax.data.builders import modelnet
  folders = [modelnet.class_folder(c) for c in classnames.MODELNET40]
  fx.write_modelnet_tree(str(tmp_path / "manual" / "ModelNet40"), folders, {"train": 1, "test": 1},
                         np.random.default_rng(0))
  registry.prepare("modelnet40", str(tmp_path / "tfds"), str(tmp_path / "manual"), num_points_stored=512)
  config = _config("zeroshot", "dataset=modelnet40,tiny")
  with config.unlocked():
    config.data.data_dir = str(tmp_path / "tfds")
    config.clip.name = tiny_clip_dir
    config.batch_size = 16  # 40 test shapes: the last batch is padded.
  result = zeroshot.run(config, str(tmp_path / "out"))
  assert config.data.align_modelnet
  assert result["num_examples"] == 40 and result["class_names"] == list(classnames.MODELNET40)
  assert np.asarray(result["confusion_matrix"]).sum(1).tolist() == [1] * 40
  written = json.loads((tmp_path / "out" / "metrics.json").read_text())
  assert set(written["per_class_accuracy"]) == set(classnames.MODELNET40)
  for key in ("top1_accuracy", "top5_accuracy", "mean_class_accuracy"):
    assert 0.0 <= written[key] <= 1.0
  assert (tmp_path / "out" / "confusion_matrix.png").exists() and (tmp_path / "out" / "depth_maps.png").exists()


def test_zeroshot_shards_over_8_devices(tmp_path, tiny_clip_dir):
  from tests.conftest import run_with_fake_devices
  single = zeroshot.run(_tiny_primitives(tiny_clip_dir, tmp_path / "one"), str(tmp_path / "one"))
  proc = run_with_fake_devices(f"""
    import json, jax
    from tests.tasks.test_zeroshot_task import _tiny_primitives
    from clip2point_jax.tasks import zeroshot
    assert jax.device_count() == 8
    result = zeroshot.run(_tiny_primitives({tiny_clip_dir!r}, {str(tmp_path / 'eight')!r}),
                          {str(tmp_path / 'eight')!r})
    print("RESULT", json.dumps(result["confusion_matrix"]))
  """)
  eight = json.loads(proc.stdout.split("RESULT", 1)[1])
  assert eight == single["confusion_matrix"]


def test_zeroshot_renders_soft_and_perspective_end_to_end(tmp_path, tiny_clip_dir, monkeypatch):
  from clip2point_jax.training import evaluate
  logits = []
  predict = evaluate.predict

  def recording(*args, **kwargs):
    out = predict(*args, **kwargs)
    logits.append(out[0])
    return out

  monkeypatch.setattr(evaluate, "predict", recording)
  hard = zeroshot.run(_tiny_primitives(tiny_clip_dir, tmp_path), str(tmp_path / "hard"))
  config = _tiny_primitives(tiny_clip_dir, tmp_path)  # the same prepared data
  with config.unlocked():
    config.render.mode = "soft"
    config.render.camera = "perspective"
    config.render.fov = 50.0
    config.batch_size = 64  # every cloud in one batch: the one-batch timing
  soft = zeroshot.run(config, str(tmp_path / "soft"))
  assert soft["num_examples"] == hard["num_examples"] > 0
  written = json.loads((tmp_path / "soft" / "metrics.json").read_text())
  assert (written["render"]["mode"], written["render"]["camera"]) == ("soft", "perspective")
  _check_throughput(written, one_batch=True)
  _check_throughput(json.loads((tmp_path / "hard" / "metrics.json").read_text()), one_batch=False)
  assert hard["render"]["mode"] == "hard"
  # The settings reached the classifier and the depth grid it draws.
  assert logits[0].shape == logits[1].shape and np.abs(logits[0] - logits[1]).max() > 1e-4
  assert ((tmp_path / "soft" / "depth_maps.png").read_bytes()
          != (tmp_path / "hard" / "depth_maps.png").read_bytes())


def _tiny_primitives(clip_dir, workdir):
  config = _config("zeroshot", "dataset=primitives,tiny")
  with config.unlocked():
    config.data.data_dir = str(workdir) + "/tfds"
    config.clip.name = clip_dir
    config.batch_size = 6  # Rounded up to 8 on 8 devices.
  return config
