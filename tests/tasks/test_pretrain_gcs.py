"""Pre-training in the tiny preset with its data and workdir in a (fake) bucket: written, killed, resumed.

The tiny ShapeNet-55 release of `pretrain_fixtures` is prepared into
gs://bucket/tfds (TFDS files made locally and uploaded; records read back by
ArrayRecord over the GCS API); the run then keeps everything it makes there
or under gs://bucket/run: the stored-points and image-feature caches beside
the dataset, the tiny random CLIP, the metrics, the figure and the orbax
checkpoints (arrays written by TensorStore's GCS driver).
`tests/core/fake_gcs.py` says what the fake does and does not imitate.
The built-in shapes' mesh renderings (the tiny preset's own data) take half
a minute to make, and the evaluations compile a second model: both are left
to tests/tasks/test_pretrain_task.py.
"""

import collections
import json
import os

import pytest

from clip2point_jax.core import paths
from clip2point_jax.data import pretrain_data, registry
from clip2point_jax.loading import depth_encoder
from clip2point_jax.tasks import pretrain
from clip2point_jax.training import loop
from tests.core import fake_gcs
from tests.tasks import pretrain_fixtures as pf

DATA_DIR, WORKDIR = "gs://bucket/tfds", "gs://bucket/run"


def _config():
  # clip.name empty: the preset's tiny random CLIP, made in the workdir.
  return pf.tiny_config(DATA_DIR, "", num_steps=4, log_every=1,
                        **{"checkpoint.every_steps": 2, "evals.val.data.name": "",
                           "evals.downstream.data.name": ""})


def _steps(folder) -> list[int]:
  return sorted(int(s) for s in os.listdir(folder) if s.isdigit())


def test_tiny_pretraining_in_a_bucket_writes_and_resumes_its_checkpoint(tmp_path, monkeypatch, capsys):
  monkeypatch.setattr(paths, "LOCAL_COPIES", str(tmp_path / "local_copies"))
  cwd = tmp_path / "cwd"
  cwd.mkdir()
  monkeypatch.chdir(cwd)
  bucket = tmp_path / "gcs" / "bucket" / "run"
  original = pretrain_data.batches

  def killed_after_3(*args, **kwargs):
    for i, batch in enumerate(original(*args, **kwargs)):
      if i == 3:
        raise KeyboardInterrupt
      yield batch

  with fake_gcs.fake_gcs(tmp_path / "gcs") as server:
    manual = pf.write_manual_dir(str(tmp_path / "manual"))
    registry.prepare("shapenet55", DATA_DIR, manual, num_points_stored=512)
    # A: killed during step 4; its last checkpoint, step 2, is in the bucket.
    monkeypatch.setattr(pretrain_data, "batches", killed_after_3)
    with pytest.raises(KeyboardInterrupt):
      pretrain.run(_config(), WORKDIR)
    monkeypatch.setattr(pretrain_data, "batches", original)
    assert _steps(bucket / "checkpoints") == [2]
    # B: the same command resumes from it and finishes.
    summary = pretrain.run(_config(), WORKDIR)
    assert "pretrain: resuming from step 2 (gs://bucket/run/checkpoints)" in capsys.readouterr().out
    assert summary["steps"] == 4 and summary["checkpoints"] == "gs://bucket/run/checkpoints"
    assert depth_encoder.find_step_dir(WORKDIR) == "gs://bucket/run/checkpoints/4"
    encoder, w = depth_encoder.read_encoder("gs://bucket/run/checkpoints/4")
    assert encoder["vision_model"] and w is not None
    clients = collections.Counter(agent.split("/")[0] for agent in server.clients)

  assert _steps(bucket / "checkpoints") == [2, 4]
  assert (bucket / "checkpoints" / "4" / "commit_success.txt").is_file()
  records = [json.loads(line) for line in (bucket / loop.METRICS_FILE).read_text().splitlines()]
  assert [r["step"] for r in records] == [1, 2, 3, 4]  # A's step 3 dropped, B's kept
  assert (bucket / loop.CURVES_FILE).read_bytes()[:4] == b"\x89PNG"
  assert (bucket / "tiny_clip" / "model.safetensors").is_file()
  prepared = next((tmp_path / "gcs" / "bucket" / "tfds" / "shapenet55").glob("*"))
  assert (prepared / "dataset_info.json").is_file()
  assert (prepared / "stored_points" / "train" / "cache.json").is_file()
  assert (prepared / "clip_image_features").is_dir()
  # Array bytes went through TensorStore, records through ArrayRecord's GCS reader.
  assert clients["tensorstore"] > 0 and clients["gl-cpp"] > 0, clients
  assert not os.listdir(cwd), "a gs:// path was written as a local folder"
