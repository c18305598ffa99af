"""Storage paths: local folders (as str and as epath.Path) and gs:// through a fake GCS.

The fake (`tests/core/fake_gcs.py`) maps gs://<bucket>/<name> to a local
folder for epath's fsspec backend and serves the GCS JSON API over HTTP to
TensorStore (orbax's arrays) and ArrayRecord (TFDS's records), so a test
reads back, through plain `os`, what each client really wrote.
"""

import collections
import json
import os

from etils import epath
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clip2point_jax.core import checkpoints, feature_cache, paths, plots
from clip2point_jax.errors import UserError
from clip2point_jax.training import loop
from clip2point_jax.validation import workdir as workdir_lib
from tests.core import fake_gcs


@pytest.fixture(name="gcs")
def _gcs(tmp_path, monkeypatch):
  """A fake GCS over tmp_path/gcs; the cwd is tmp_path/cwd, which must stay empty."""
  monkeypatch.setattr(paths, "LOCAL_COPIES", str(tmp_path / "local_copies"))
  cwd = tmp_path / "cwd"
  cwd.mkdir()
  monkeypatch.chdir(cwd)
  with fake_gcs.fake_gcs(tmp_path / "gcs") as server:
    yield server
  # os.path.abspath("gs://b/x") would have made a local folder "gs:" here.
  assert not os.listdir(cwd), f"local files written for gs:// paths: {os.listdir(cwd)}"


def _clients(server) -> collections.Counter:
  return collections.Counter(agent.split("/")[0] for agent in server.clients)


def test_local_and_remote_spellings():
  assert paths.is_remote("gs://bucket/run") and paths.is_remote(epath.Path("gs://bucket/run"))
  assert not paths.is_remote("/tmp/run") and not paths.is_remote("runs/gs://odd")
  assert paths.absolute("gs://bucket/run/") == "gs://bucket/run"
  assert paths.absolute("runs/x") == os.path.abspath("runs/x")
  assert paths.expand("~/x") == os.path.expanduser("~/x")
  assert paths.expand("gs://bucket/~x") == "gs://bucket/~x"
  assert os.path.join("gs://bucket/run", "checkpoints") == "gs://bucket/run/checkpoints"


def test_require_local_names_the_field_and_the_path():
  assert paths.require_local("~/data", "config.manual_dir") == os.path.expanduser("~/data")
  with pytest.raises(UserError, match=r"^config.manual_dir='gs://bucket/raw': reading archives reads "
                                      r"local files only; copy it to this machine first"):
    paths.require_local("gs://bucket/raw", "config.manual_dir", "reading archives")
  from clip2point_jax.data import registry, splits  # pylint: disable=g-import-not-at-top
  with pytest.raises(UserError, match=r"^manual_dir='gs://bucket/raw': preparing a dataset from its "
                                      r"download reads local files only"):
    registry.prepare("shapenet55", "gs://bucket/tfds", "gs://bucket/raw")
  with pytest.raises(UserError, match=r"^the file glob='gs://bucket/\*.ply': reading point files"):
    splits.expand_files("gs://bucket/*.ply")


def test_a_missing_backend_names_the_package(monkeypatch):
  import importlib.util  # pylint: disable=g-import-not-at-top
  import fsspec  # pylint: disable=g-import-not-at-top
  if importlib.util.find_spec("tensorflow") is not None:
    pytest.skip("with TensorFlow, epath reaches gs:// through tf.io.gfile")

  def missing(protocol):
    raise ImportError(f"Install gcsfs to access {protocol}")

  monkeypatch.setattr(fsspec, "get_filesystem_class", missing)
  paths._check_backend.cache_clear()  # pylint: disable=protected-access
  try:
    with pytest.raises(UserError, match=r"^gs:// paths need the gcsfs package here: pip install gcsfs$"):
      paths.path("gs://bucket/run")
  finally:
    paths._check_backend.cache_clear()  # pylint: disable=protected-access


@pytest.mark.parametrize("kind", ["str", "epath"])
def test_json_round_trip_locally(tmp_path, kind):
  target = tmp_path / "a.json" if kind == "str" else epath.Path(tmp_path) / "a.json"
  paths.write_json(str(target) if kind == "str" else target, {"x": [1, 2]}, indent=2)
  assert json.loads((tmp_path / "a.json").read_text()) == {"x": [1, 2]}
  assert paths.read_json(target) == {"x": [1, 2]}


def test_json_and_figures_in_a_bucket(gcs, tmp_path):
  paths.write_json("gs://bucket/run/metrics.json", {"top1": 0.5})
  assert json.loads((tmp_path / "gcs/bucket/run/metrics.json").read_text()) == {"top1": 0.5}
  assert paths.read_json("gs://bucket/run/metrics.json") == {"top1": 0.5}
  plots.save_learning_curves([{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0}],
                             "gs://bucket/run/curves.png")
  assert (tmp_path / "gcs/bucket/run/curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_local_copy_of_a_bucket_folder_is_made_once_and_renewed_on_change(gcs, tmp_path):
  source = tmp_path / "model"
  (source / "sub").mkdir(parents=True)
  (source / "config.json").write_text("{}")
  (source / "sub" / "weights.bin").write_bytes(b"\0" * 10)
  paths.upload_tree(str(source), "gs://bucket/model")
  assert (tmp_path / "gcs/bucket/model/sub/weights.bin").read_bytes() == b"\0" * 10
  local = paths.local_copy("gs://bucket/model/")
  assert local.startswith(paths.LOCAL_COPIES)
  assert open(os.path.join(local, "sub", "weights.bin"), "rb").read() == b"\0" * 10
  requests = len(gcs.clients)
  os.remove(os.path.join(local, "config.json"))  # Reused as it is: the listing did not change.
  assert paths.local_copy("gs://bucket/model") == local
  assert not os.path.exists(os.path.join(local, "config.json"))
  (tmp_path / "gcs/bucket/model/config.json").write_text('{"a": 1}')
  paths.local_copy("gs://bucket/model")
  assert json.load(open(os.path.join(local, "config.json"))) == {"a": 1}
  assert len(gcs.clients) == requests  # epath reaches the bucket through fsspec, not HTTP
  assert paths.local_copy(str(source)) == str(source)
  with pytest.raises(UserError, match="gs://bucket/none: no such folder"):
    paths.local_copy("gs://bucket/none")


@pytest.mark.parametrize("where", ["local", "epath", "gcs"])
def test_feature_cache_round_trip(where, tmp_path, request):
  directory = {"local": str(tmp_path / "cache"), "epath": epath.Path(tmp_path) / "cache",
               "gcs": "gs://bucket/cache"}[where]
  if where == "gcs":
    request.getfixturevalue("gcs")
  arrays = {"features": np.arange(24, dtype=np.float16).reshape(2, 3, 4),
            "labels": np.array([1, 2], np.int32)}
  identity = {"encoder": "abc", "split": "train"}
  assert feature_cache.load(os.fspath(directory), identity) is None
  feature_cache.save(os.fspath(directory), arrays, identity)
  loaded = feature_cache.load(os.fspath(directory), identity)
  for name, array in arrays.items():
    np.testing.assert_array_equal(loaded[name], array)
    assert loaded[name].dtype == array.dtype
  # Local caches are memory-mapped; a bucket's are read whole.
  assert isinstance(loaded["features"], np.memmap) == (where != "gcs")
  if where == "gcs":
    assert os.path.isfile(tmp_path / "gcs/bucket/cache/cache.json")
  with pytest.raises(UserError, match="stale"):
    feature_cache.load(os.fspath(directory), {**identity, "encoder": "xyz"})


def _state(step):
  return {"params": {"w": jnp.arange(12, dtype=jnp.float32).reshape(4, 3) * step},
          "step": jnp.int32(step)}


def test_checkpoints_in_a_bucket_go_through_tensorstore(gcs, tmp_path):
  ckpt = checkpoints.Checkpointer("gs://bucket/run/checkpoints/", keep=1, best_metric="val")
  assert ckpt.directory == "gs://bucket/run/checkpoints"
  ckpt.save(1, _state(1), meta={"epoch": 1}, metrics={"val": 0.9})
  ckpt.save(2, _state(2), meta={"epoch": 2}, metrics={"val": 0.1})
  ckpt.close()
  reopened = checkpoints.Checkpointer("gs://bucket/run/checkpoints", keep=1, best_metric="val")
  assert reopened.all_steps() == [1, 2] and reopened.best_step() == 1
  state, meta = reopened.restore(jax.eval_shape(lambda: _state(0)))
  reopened.close()
  jax.tree.map(np.testing.assert_array_equal, state, _state(2))
  assert meta == {"epoch": 2}
  # The arrays' bytes came over the GCS JSON API (TensorStore), the rest through epath.
  assert _clients(gcs)["tensorstore"] > 0
  step_dir = tmp_path / "gcs/bucket/run/checkpoints/2"
  assert (step_dir / "commit_success.txt").is_file()  # orbax's commit for object stores
  assert os.listdir(step_dir / "state" / "d")
  w = checkpoints.read_part("gs://bucket/run/checkpoints/1", lambda t: {"params": t["params"]},
                            name="run", kind="checkpoint", what="w")
  np.testing.assert_array_equal(w["params"]["w"], _state(1)["params"]["w"])


def test_checkpoints_in_a_local_epath_folder(tmp_path):
  ckpt = checkpoints.Checkpointer(epath.Path(tmp_path) / "ckpt", async_save=False)
  ckpt.save(3, _state(3))
  ckpt.close()
  assert ckpt.directory == str(tmp_path / "ckpt")
  assert checkpoints.Checkpointer(str(tmp_path / "ckpt")).latest_step() == 3


def test_workdir_claim_and_metrics_log_in_a_bucket(gcs, tmp_path):
  workdir_lib.check_writable("gs://bucket/run", "--workdir")
  assert workdir_lib.claim("gs://bucket/run", "pretrain")
  assert workdir_lib.owner("gs://bucket/run") == {"task": "pretrain"}
  with pytest.raises(UserError, match="holds the results of a pretrain run"):
    workdir_lib.check_owner("gs://bucket/run", "zeroshot", share=False)
  log = loop.MetricsLog("gs://bucket/run", tensorboard=False)
  for step in (1, 2, 3):
    log.write({"step": step, "loss": 1.0 / step})
  resumed = loop.MetricsLog("gs://bucket/run", resume_step=2, tensorboard=False)
  assert [r["step"] for r in resumed.records] == [1, 2]
  lines = (tmp_path / "gcs/bucket/run" / loop.METRICS_FILE).read_text().splitlines()
  assert [json.loads(line)["step"] for line in lines] == [1, 2]
  (tmp_path / "gcs/bucket/file").write_text("x")
  with pytest.raises(UserError, match=r"--workdir='gs://bucket/file' is a file"):
    workdir_lib.check_writable("gs://bucket/file", "--workdir")
  assert not workdir_lib.claim("gs://bucket/run", "pretrain")
  workdir_lib.release_if_unused("gs://bucket/other")  # nothing there: nothing to do


def test_release_removes_an_unused_claimed_bucket_folder(gcs, tmp_path):
  assert workdir_lib.claim("gs://bucket/empty", "zeroshot")
  workdir_lib.release_if_unused("gs://bucket/empty")
  assert not (tmp_path / "gcs/bucket/empty").exists()


def test_a_dataset_prepared_into_a_bucket_is_read_back_through_arrayrecord(gcs, tmp_path):
  from clip2point_jax.data import registry, pretrain_data  # pylint: disable=g-import-not-at-top
  options = dict(num_per_class_train=2, num_per_class_test=1, num_points_stored=64, render_images=False)
  path = registry.prepare("primitives", "gs://bucket/tfds", **options)
  assert path.startswith("gs://bucket/tfds/primitives/") and registry.is_prepared(
      "primitives", "gs://bucket/tfds", options)
  local = tmp_path / "gcs" / path[len("gs://"):]
  assert (local / "dataset_info.json").is_file() and (local / "metadata.json").is_file()
  uploads = len(os.listdir(local))
  assert registry.prepare("primitives", "gs://bucket/tfds", **options) == path  # prepared: kept
  source, class_names = registry.load_split("primitives", "train", "gs://bucket/tfds", options=options)
  assert len(source) == 2 * len(class_names) and source[0]["points"].shape == (64, 3)
  assert _clients(gcs)["gl-cpp"] > 0  # the records came over the GCS API (ArrayRecord's reader)
  identity = pretrain_data.dataset_identity("primitives", "gs://bucket/tfds", "train", options)
  assert identity["records"] and all(size > 0 for _, size in identity["records"])
  assert len(os.listdir(local)) == uploads


def test_the_config_check_reads_bucket_inputs_and_refuses_local_only_ones(gcs, tmp_path):
  from clip2point_jax import validation  # pylint: disable=g-import-not-at-top
  from tests.conftest import set_fields, task_config  # pylint: disable=g-import-not-at-top
  missing = set_fields(task_config("zeroshot", "dataset=primitives,tiny"), depth_encoder="gs://bucket/none")
  with pytest.raises(UserError, match=r"^config.depth_encoder='gs://bucket/none': no such file or folder$"):
    validation.check_task(missing)
  (tmp_path / "gcs/bucket/run/checkpoints").mkdir(parents=True)
  validation.check_task(set_fields(missing, depth_encoder="gs://bucket/run"))
  raw = set_fields(task_config("prepare", "dataset=shapenet55"), manual_dir="gs://bucket/raw")
  with pytest.raises(UserError, match=r"^config.manual_dir='gs://bucket/raw': the prepare task reads local files only; copy it"):
    validation.check_task(raw)
