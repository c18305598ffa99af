"""Every mistake a user can make on the command line ends in one `error:` line.

Each row of `MISTAKES` is a command line with one mistake and a piece of the
line it must print. For each: exit status 1 or 2, exactly one `error:` line
and nothing else on stderr worth a traceback, no hang, and no file created,
changed or removed in the sandbox the command was pointed at (its workdir,
data dir and caches all live there). The commands run through
`tests/main_driver.py`, which forks them from one warm process.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO_ROOT

ZS = "configs/zeroshot.py:dataset=primitives,tiny"
FS = "configs/fewshot.py:dataset=primitives,tiny"
PT = "configs/pretrain.py:tiny"

# (id, command line without --workdir, what the error line must contain).
# "{sandbox}" is the case's own folder; every command's workdir is {sandbox}/run
# unless it gives one, and its data go to {sandbox}/tfds.
MISTAKES = [
    ("typo-with-suggestion", ["--config", ZS, "--config.data.num_pointz=5"],
     "the config has no field 'num_pointz'; did you mean 'num_points'?"),
    ("unknown-field", ["--config", ZS, "--config.colour=red"], "the config has no field 'colour'"),
    ("field-of-another-task", ["--config", "configs/demo.py:tiny", "--config.clip.name=x"],
     "the config has no field 'clip.name'"),
    ("no-such-config-file", ["--config", "configs/nope.py"], "cannot load config file configs/nope.py"),
    ("config-argument-typo", ["--config", "configs/zeroshot.py:datset=x"], "unknown config argument 'datset'"),
    ("no-config", [], "give a task's config"),
    ("wrong-type", ["--config", ZS, "--config.batch_size=abc"], "--config.batch_size=abc"),
    ("negative-batch-pretrain", ["--config", PT, "--config.batch_size=-4"],
     "config.batch_size=-4: must be at least 1"),
    ("zero-batch-pretrain", ["--config", PT, "--config.batch_size=0"], "config.batch_size=0: must be at least 1"),
    ("negative-batch-fewshot", ["--config", FS, "--config.batch_size=-4"], "config.batch_size=-4"),
    ("negative-points", ["--config", FS, "--config.data.num_points=-5"],
     "config.data.num_points=-5: must be at least 1"),
    ("render-mode", ["--config", PT, "--config.render.mode=sof"], "config.render.mode='sof': use one of hard, soft"),
    ("render-camera", ["--config", ZS, "--config.render.camera=fisheye"], "config.render.camera='fisheye'"),
    ("render-fov", ["--config", ZS, "--config.render.fov=200"], "config.render.fov=200.0: must be in (0, 180)"),
    ("render-radius", ["--config", ZS, "--config.render.radius=-0.1"], "config.render.radius=-0.1: must be positive"),
    ("clip-dtype", ["--config", ZS, "--config.clip.dtype=float64"], "config.clip.dtype='float64'"),
    ("clip-attention", ["--config", ZS, "--config.clip.attention=flash"], "config.clip.attention='flash'"),
    ("clip-folder-missing", ["--config", ZS, "--config.clip.name=/no/such/clip"], "/no/such/clip"),
    ("unknown-dataset", ["--config", ZS, "--config.data.name=modelnet41"],
     "config.data.name='modelnet41': no such dataset"),
    ("files-without-glob", ["--config", ZS, "--config.data.name=files"], "config.data.files is empty"),
    ("depth-encoder-missing", ["--config", ZS, "--config.depth_encoder={sandbox}/nope"],
     "config.depth_encoder="),
    ("gdpa-missing", ["--config", ZS, "--config.gdpa={sandbox}/nope"], "config.gdpa="),
    ("view-weights-length", ["--config", ZS, "--config.view_weights=(1.0,2.0)"], "config.view_weights has 2"),
    ("no-views", ["--config", ZS, "--config.views=()"], "config.views is empty"),
    ("prompt-without-slot", ["--config", ZS, "--config.prompts=('a picture',)"], "has no '{}'"),
    ("classify-one-class", ["--config", "configs/classify.py", "--config.classes=chair",
                            "--config.inputs=x/*.ply"], "give at least two"),
    ("classify-no-inputs", ["--config", "configs/classify.py", "--config.classes=chair,table"],
     "config.inputs is empty"),
    ("fewshot-no-seeds", ["--config", FS, "--config.seeds=()"], "config.seeds=(): is empty"),
    ("fewshot-negative-shots", ["--config", FS, "--config.shots=-1"], "config.shots=-1"),
    ("fewshot-fusion", ["--config", FS, "--config.model.fusion=sum"], "config.model.fusion='sum'"),
    ("fewshot-val-fraction", ["--config", FS, "--config.val_fraction=1.0"], "config.val_fraction=1.0"),
    ("fewshot-dropout", ["--config", FS, "--config.model.dropout=1.5"], "config.model.dropout=1.5"),
    ("pretrain-regex", ["--config", PT, "--config.optim.trainable=('depth_encoder/(',)"], "invalid regex"),
    ("pretrain-negatives-group", ["--config", PT, "--config.loss.negatives_group=3"],
     "config.loss.negatives_group=3 must divide"),
    ("pretrain-pointclip-mode", ["--config", PT, "--config.render.mode=pointclip"],
     "config.render.mode='pointclip': pre-training pairs"),
    ("pretrain-image-features", ["--config", PT, "--config.image_features=disk"], "config.image_features='disk'"),
    ("pretrain-jitter", ["--config", PT, "--config.render.distance_jitter=1.5"], "config.render.distance_jitter"),
    ("pretrain-learning-rate", ["--config", PT, "--config.optim.learning_rate=-0.1"],
     "config.optim.learning_rate=-0.1: must be at least 0"),
    ("demo-nested-field", ["--config", "configs/demo.py:tiny", "--config.pretrain.batch_size=0"],
     "config.pretrain.batch_size=0"),
    ("detect-no-scans", ["--config", "configs/detect.py:tiny"], "config.data.scans_dir is empty"),
    ("detect-gdpa-no-checkpoint", ["--config", "configs/detect.py:dataset=synthetic,tiny",
                                   "--config.classifier.kind=gdpa"], "config.classifier.checkpoint"),
    ("detect-kind", ["--config", "configs/detect.py:dataset=synthetic,tiny", "--config.classifier.kind=svm"],
     "config.classifier.kind='svm'"),
    ("detect-iou", ["--config", "configs/detect.py:dataset=synthetic,tiny", "--config.eval.iou_thresholds=(1.5,)"],
     "config.eval.iou_thresholds"),
    ("prepare-dataset", ["--config", "configs/prepare.py:dataset=modelnet41"], "modelnet41"),
    ("render-no-shapenet", ["--config", "configs/render.py:tiny"], "config.shapenet_dir is empty"),
    ("render-edge-rule", ["--config", "configs/render.py:tiny", "--config.edge_rule=bottom_right"],
     "config.edge_rule='bottom_right'"),
    ("render-shard", ["--config", "configs/render.py:tiny", "--config.shapenet_dir={sandbox}",
                      "--config.lists_dir={sandbox}", "--config.shard=2/1"], "config.shard='2/1'"),
    ("visualize-view", ["--config", "configs/visualize.py:dataset=primitives,tiny", "--config.view=99"],
     "config.view=99"),
    ("complexity-analysis", ["--config", "configs/complexity.py:tiny", "--config.cost_analysis=magic"],
     "config.cost_analysis='magic'"),
    ("compare-unknown-method", ["--config", "configs/compare.py:dataset=primitives,tiny",
                                "--config.methods=('clip2point','pointnet')"], "config.methods="),
    ("workdir-is-a-file", ["--config", ZS, "--workdir", "{sandbox}/a_file"], "is a file; give a folder"),
    ("workdir-below-a-file", ["--config", ZS, "--workdir", "{sandbox}/a_file/run"], "is a file"),
    ("cache-dir-is-a-file", ["--config", FS, "--config.cache_dir={sandbox}/a_file"], "config.cache_dir="),
    ("workdir-of-another-task", ["--config", ZS, "--workdir", "{sandbox}/pretrain_run"],
     "holds the results of a pretrain run"),
    ("distributed-without-coordinator", ["--config", ZS, "--distributed"], "--distributed"),
    ("broken-gdpa-json", ["--config", ZS, "--config.gdpa={sandbox}/fewshot_run"],
     "not a readable GDPA description"),
    ("override-against-the-trained-encoder", ["--config", ZS, "--config.depth_encoder={sandbox}/pretrain_run",
                                             "--config.render.image_size=32"],
     "--config.render.image_size=32 but the depth encoder of config.depth_encoder"),
]


def _broken_gdpa(sandbox):
  os.makedirs(os.path.join(sandbox, "fewshot_run", "seed_0"))
  with open(os.path.join(sandbox, "fewshot_run", "seed_0", "gdpa.json"), "w") as f:
    f.write('{"config": {"clip": ')


def _pretrained_encoder(sandbox):
  """An encoder-only pre-training checkpoint whose metadata records configs/pretrain.py:tiny (64 px)."""
  from clip2point_jax.loading import depth_encoder  # pylint: disable=g-import-not-at-top
  from tests.conftest import task_config  # pylint: disable=g-import-not-at-top

  config = task_config("pretrain", "tiny")
  depth_encoder.save(os.path.join(sandbox, "pretrain_run", depth_encoder.CHECKPOINTS),
                     {"visual_projection": {"kernel": np.zeros((2, 2), np.float32)}},
                     meta={"config": json.loads(config.to_json_best_effort())})


# Cases that need a file made before they run: name -> setup(sandbox).
SETUPS = {"broken-gdpa-json": _broken_gdpa, "override-against-the-trained-encoder": _pretrained_encoder}


def _sandbox(root, name: str) -> str:
  sandbox = os.path.join(root, name)
  os.makedirs(os.path.join(sandbox, "pretrain_run"))
  with open(os.path.join(sandbox, "pretrain_run", "clip2point_task.json"), "w") as f:
    json.dump({"task": "pretrain"}, f)
  with open(os.path.join(sandbox, "a_file"), "w") as f:
    f.write("not a folder")
  return sandbox


@pytest.fixture(scope="module")
def results(tmp_path_factory):
  """{case id: the driver's result} for every row of MISTAKES, from one driver run."""
  root = str(tmp_path_factory.mktemp("mistakes"))
  cases = []
  for name, args, _ in MISTAKES:
    sandbox = _sandbox(root, name)
    if name in SETUPS:
      SETUPS[name](sandbox)
    args = [a.replace("{sandbox}", sandbox) for a in args]
    if args and "--workdir" not in args:
      args += ["--workdir", os.path.join(sandbox, "run")]
    if args and args[1].split(":")[0] not in ("configs/prepare.py", "configs/render.py",
                                              "configs/complexity.py", "configs/detect.py",
                                              "configs/demo.py", "configs/classify.py"):
      args.append(f"--config.data.data_dir={sandbox}/tfds")
    cases.append({"args": args, "sandbox": sandbox, "timeout": 60})
  with open(os.path.join(root, "cases.json"), "w") as f:
    json.dump(cases, f)
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "TFDS_DATA_DIR": os.path.join(root, "tfds_default")}
  subprocess.run([sys.executable, os.path.join(REPO_ROOT, "tests", "main_driver.py"),
                  os.path.join(root, "cases.json"), os.path.join(root, "results.json")],
                 cwd=REPO_ROOT, env=env, check=True, timeout=900)
  with open(os.path.join(root, "results.json")) as f:
    return dict(zip([m[0] for m in MISTAKES], json.load(f)))


def test_the_table_covers_at_least_thirty_mistakes_over_every_task():
  assert len(MISTAKES) >= 30
  configs = {a.split(":")[0] for _, args, _ in MISTAKES for a in args if a.startswith("configs/")}
  tasks = {os.path.basename(p)[:-3] for p in os.listdir(os.path.join(REPO_ROOT, "configs"))} - {"common"}
  assert {os.path.basename(c)[:-3] for c in configs} >= tasks - {"finetune"}


@pytest.mark.parametrize("name, args, expected", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_a_mistake_ends_in_one_error_line(results, name, args, expected):
  result = results[name]
  stderr = result["stderr"]
  assert not result["timed_out"], f"hung: {stderr[-2000:]}"
  assert result["status"] in (1, 2), (result["status"], stderr[-2000:])
  assert "Traceback" not in stderr + result["stdout"], stderr[-3000:]
  error_lines = [line for line in stderr.splitlines() if line.startswith("error: ")]
  assert len(error_lines) == 1, stderr[-2000:]
  assert expected in error_lines[0], error_lines[0]
  assert not result["changed"], f"changed on disk: {result['changed']}"


@pytest.mark.parametrize("flag", ["--help", "--print_config"])
def test_help_lists_the_tasks_fields_with_their_meanings(flag):
  proc = subprocess.run([sys.executable, "-m", "clip2point_jax.main", "--config",
                         "configs/fewshot.py:dataset=primitives,tiny", flag],
                        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                        env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert proc.returncode == 0, proc.stderr
  rows = {line.split()[0]: line for line in proc.stdout.splitlines() if line.startswith("  ")}
  assert "0.08" in rows["render.radius"] and "point radius" in rows["render.radius"]
  assert "'gate'" in rows["model.fusion"]
  if flag == "--help":
    assert "--share_workdir" in rows and "pretrain" in proc.stdout
