"""The detect task end to end on synthetic scenes, and its errors."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from clip2point_jax.core.config_args import load_sibling
from clip2point_jax.detection import evaluate, scannet, synthetic
from clip2point_jax.errors import UserError
from clip2point_jax.tasks import detect

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = os.path.join(REPO, "configs")
CLASSES = scannet.resolve_classes("primitives")[0]


def _config(arg="dataset=synthetic,tiny"):
  return load_sibling(os.path.join(CONFIGS, "x.py"), "detect").get_config(arg)


@pytest.fixture(scope="module")
def scenes_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("detect_scenes")
  options = dict(_config().data.synthetic)
  synthetic.write_scene_folder(str(root), options.pop("num_scenes"), seed=0, **options)
  return str(root)


def _recompute(workdir, scenes_dir, thresholds):
  """mAP from the written detections.json and the ground-truth files alone."""
  with open(os.path.join(workdir, "detections.json")) as f:
    written = json.load(f)
  det, gt = [], []
  for name, rows in written["scenes"].items():
    det.append(evaluate.SceneBoxes(np.array([r["box"] for r in rows]).reshape(-1, 7),
                                   np.array([CLASSES.index(r["class"]) for r in rows], int),
                                   np.array([r["score"] for r in rows])))
    g = scannet.read_gt_boxes(os.path.join(scenes_dir, f"{name}_bbox.npy"), CLASSES, "index")
    gt.append(evaluate.SceneBoxes(g.boxes, g.labels))
  return evaluate.evaluate(det, gt, CLASSES, thresholds)


def test_zeroshot_detection_writes_metrics_detections_and_pictures(tmp_path, tiny_clip_dir, scenes_dir, capsys):
  config = _config()
  with config.unlocked():
    config.data.scans_dir = scenes_dir
    config.clip.name = tiny_clip_dir
  result = detect.run(config, str(tmp_path))
  written = json.loads((tmp_path / "metrics.json").read_text())
  assert written["num_scenes"] == 2 and written["num_gt_boxes"] == 8
  # Every scene has one proposal in empty air, dropped for holding no points.
  assert written["num_kept_boxes"] <= written["num_proposals"] - 2
  assert written["num_detections"] == written["num_kept_boxes"]
  for t in ("0.25", "0.5"):
    assert 0.0 <= written[f"mAP@{t}"] <= 1.0 and written[f"mAP@{t}"] == result[f"mAP@{t}"]
  # The reported mAP is what the written detections score against the files.
  again = _recompute(str(tmp_path), scenes_dir, (0.25, 0.5))
  for t in ("0.25", "0.5"):
    assert again[f"iou_{t}"]["mAP"] == pytest.approx(written[f"mAP@{t}"], abs=1e-9)
    assert again[f"iou_{t}"]["ap"] == pytest.approx(written["per_threshold"][f"iou_{t}"]["ap"])
  # Throughput (issue #26): the first batch of crops apart, the crops after it steady.
  assert written["num_kept_boxes"] > config.batch_size  # more than one batch
  assert written["compile_seconds"] > 0 and written["crops_per_second"] > 0
  assert "crops_per_second_note" not in written
  assert written["scenes_per_second"] == pytest.approx(2 / written["seconds"])
  with open(tmp_path / "bev_scene0000_00.png", "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  out = capsys.readouterr().out
  assert "AP@0.25" in out and "mAP" in out and "tetrahedron" in out
  # Crops made on the host (crop.where=host) instead of the device (the default): the same boxes kept,
  # the same classes, scores to float32 rounding (the crops' normalisation sums in another order), the same AP.
  assert written["settings"]["crop_where"] == "device"
  with config.unlocked():
    config.crop.where = "host"
  on_host = detect.run(config, str(tmp_path / "host"))
  assert on_host["settings"]["crop_where"] == "host" and on_host["num_kept_boxes"] == written["num_kept_boxes"]
  for t in ("0.25", "0.5"):
    assert on_host[f"mAP@{t}"] == pytest.approx(written[f"mAP@{t}"], abs=1e-9)
    assert on_host["per_threshold"][f"iou_{t}"]["ap"] == pytest.approx(written["per_threshold"][f"iou_{t}"]["ap"])
  device_rows = json.loads((tmp_path / "detections.json").read_text())["scenes"]
  host_rows = json.loads((tmp_path / "host" / "detections.json").read_text())["scenes"]
  assert device_rows.keys() == host_rows.keys()
  for name, rows in device_rows.items():
    assert [(r["box"], r["class"]) for r in rows] == [(r["box"], r["class"]) for r in host_rows[name]]
    np.testing.assert_allclose([r["score"] for r in rows], [r["score"] for r in host_rows[name]], rtol=1e-4)


def test_oracle_detection_scores_ap_1(tmp_path, scenes_dir):
  config = _config()
  with config.unlocked():
    config.data.scans_dir = scenes_dir
    config.classifier.kind = "oracle"
    config.scores.per_class = True
  result = detect.run(config, str(tmp_path))
  assert result["mAP@0.25"] == 1.0 and result["mAP@0.5"] == 1.0
  assert result["num_detections"] == 8 * result["num_kept_boxes"]
  assert result["crops_per_second"] is None and result["scenes_per_second"] > 0  # nothing compiled


def test_synthetic_preset_makes_its_scenes(tmp_path):
  config = _config()
  with config.unlocked():
    config.classifier.kind = "oracle"
    config.num_plot_scenes = 0
  result = detect.run(config, str(tmp_path))
  assert os.path.exists(tmp_path / "synthetic_scenes" / "scene0001_00" / "scene0001_00_vh_clean_2.ply")
  assert result["num_scenes"] == 2 and result["mAP@0.25"] == 1.0


def test_bad_files_and_settings_are_named(tmp_path, scenes_dir):
  broken = tmp_path / "scenes"
  shutil.copytree(scenes_dir, broken)
  bad = broken / "scene0001_00_proposals.json"
  bad.write_text('{"boxes": [[0, 0, 0, 1, 1]]}')
  config = _config()
  with config.unlocked():
    config.data.scans_dir = str(broken)
    config.classifier.kind = "oracle"
  with pytest.raises(UserError, match="scene0001_00_proposals.json"):
    detect.run(config, str(tmp_path / "out"))
  with config.unlocked():
    config.classifier.kind = "gpda"
  with pytest.raises(UserError, match="classifier.kind='gpda'; use one of gdpa, oracle, zeroshot"):
    detect.run(config, str(tmp_path / "out"))
  with config.unlocked():
    config.classifier.kind = "oracle"
    config.crop.where = "gpu"
  with pytest.raises(UserError, match="crop.where='gpu'; use one of device, host"):
    detect.run(config, str(tmp_path / "out"))
  with config.unlocked():
    config.crop.where = "device"
    config.classifier.kind = "gdpa"
  with pytest.raises(UserError, match="kind='gdpa' needs config.classifier.checkpoint"):
    detect.run(config, str(tmp_path / "out"))
  with config.unlocked():
    config.classifier.kind = "oracle"
    config.data.scans_dir = scenes_dir
    config.data.label_format = "nyu40"  # the synthetic files hold class indices
  with pytest.raises(UserError, match="scene0000_00_bbox.npy: NYU40 labels map to ScanNet's 18 classes"):
    detect.run(config, str(tmp_path / "out"))
  # From the command line: one line naming the file, exit status 1.
  proc = subprocess.run(
      [sys.executable, "-m", "clip2point_jax.main", "--config", "configs/detect.py:dataset=synthetic,tiny",
       f"--config.data.scans_dir={broken}", "--config.classifier.kind=oracle", "--workdir", str(tmp_path / "cli")],
      cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  assert proc.stderr.count("error: ") == 1 and "scene0001_00_proposals.json" in proc.stderr, proc.stderr
