"""The TPU and GPU paths, proven from the CPU: every task's jitted step exported with `jax.export`.

Each function is built as its task builds it (tiny presets, bfloat16 as the
real configs compute) under `backend.target(platform)` and exported over 4
abstract devices (`exporting` says where a GPU export uses one). A TPU module
must hold no GPU kernel (no Triton or Mosaic call, no Pallas kernel traced
into plain ops); a GPU module must hold exactly the Triton kernels that the
GPU path runs, so both backends stay honest.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clip2point_jax.core import parallel, rules
from clip2point_jax.data import pretrain_data, shapenet_render
from clip2point_jax.kernels import backend, dispatch
from clip2point_jax.loading import classifier, hf_clip, tiny_clip
from clip2point_jax.models import clip as clip_lib
from clip2point_jax.projection import encode, zeroshot
from clip2point_jax.training import gdpa as gdpa_training
from clip2point_jax.training import pretrain as pretraining
from renderers import cameras, mesh_batch, points as points_lib
from renderers import mesh as mesh_renderer
from tests.conftest import set_fields, task_config
from tests.export import exporting

BATCH = 8  # clouds (or meshes) per step: 2 per device
ATTENTION = {"forward_kernel"}  # the Pallas attention at inference
# Which Triton kernels each GPU module holds: inference runs all three Pallas
# passes; a training step the attention and its gradient (the layer norm and
# quick-GELU run XLA's ops when differentiated); the rest none.
GPU_KERNELS = {
    "zeroshot": ATTENTION | {"layer_norm", "quick_gelu"},
    "pretrain_step": ATTENTION | {"backward_kernel"},
    "gdpa_step": set(),
    "mesh_renderer": set(),
    "projector_hard": set(),
    "projector_soft": set(),
}
# Donated arguments (the train state's leaves) in the steps that donate.
DONATES = {"pretrain_step", "gdpa_step"}


def _half_precision(config):
  """The real configs' bfloat16 compute (the tiny presets run float32 on CPUs)."""
  return set_fields(config, **{"clip.dtype": "bfloat16"})


def _replicated_params(loaded: hf_clip.LoadedCLIP, mesh):
  return exporting.abstract(loaded.params, parallel.replicated(mesh))


# ---------------------------------------------------------------- builders
# Each: (mesh, workdirs) -> (jitted function, abstract arguments), as its task builds it.


def build_zeroshot(mesh, workdirs):
  """tasks/zeroshot.py's points -> logits (`loading/classifier.py`, CLIP2Point's recipe)."""
  config = _half_precision(task_config("zeroshot", "dataset=primitives,tiny"))
  tiny_clip.use_if_unnamed(config, workdirs["zeroshot"], "zeroshot")
  loaded = hf_clip.load_configured(config.clip, config.render.image_size)
  classify = zeroshot.make_classifier(encode.clip_depth_encoder(loaded),
                                      classifier.render_settings(config))
  text = jax.ShapeDtypeStruct((5, loaded.config.projection_dim), jnp.float32,
                              sharding=parallel.replicated(mesh))
  points = exporting.data_sharded(mesh, (BATCH, config.data.num_points, 3), jnp.float32)
  return classify, (_replicated_params(loaded, mesh), text, points)


def build_pretrain_step(mesh, workdirs):
  """tasks/pretrain.py's train step: LAMB update, state donated, shardings from the config."""
  config = _half_precision(task_config("pretrain", "tiny"))
  tiny_clip.use_if_unnamed(config, workdirs["pretrain"], "pretrain")
  loaded = hf_clip.load_configured(config.clip, config.render.image_size)
  period = config.optim.restart_steps
  trainable, frozen = rules.split(pretraining.initial_params(loaded, config.w_init),
                                  config.optim.trainable)
  state, tx, schedule = pretraining.initial_state(config, trainable, period)
  shardings = pretraining.state_shardings(mesh, state, config.sharding_rules)
  frozen_shardings = pretraining.state_shardings(mesh, frozen, config.sharding_rules)
  step = pretraining.jitted_train_step(
      config, clip_lib.vision_tower(loaded.model), tx, schedule, live=False, period=period,
      mesh=mesh, state=state, frozen=frozen, shardings=shardings,
      frozen_shardings=frozen_shardings)
  batch = {"points": exporting.data_sharded(mesh, (BATCH, config.data.num_points, 3), jnp.float32),
           "view": exporting.data_sharded(mesh, (BATCH,), jnp.int32),
           "row": exporting.data_sharded(mesh, (BATCH,), jnp.int32)}
  # The cache of F_I: every (shape, view)'s CLIP image feature.
  image_source = jax.ShapeDtypeStruct(
      (2 * BATCH, pretrain_data.NUM_VIEWS, loaded.config.projection_dim),
      jnp.dtype(config.image_cache.dtype), sharding=parallel.replicated(mesh))
  as_abstract = lambda tree, sharding_tree: jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(np.shape(x), jnp.asarray(x).dtype, sharding=s),
      tree, sharding_tree)
  return step, (as_abstract(state, shardings), as_abstract(frozen, frozen_shardings), batch,
                image_source)


def build_gdpa_step(mesh, workdirs):
  """tasks/fewshot.py's GDPA epoch of steps on cached per-view features (its default, augment=False)."""
  del workdirs
  config = task_config("fewshot", "dataset=primitives,tiny")
  features, num_views, num_classes = 32, len(config.views), 8
  model, tx, _ = gdpa_training.build(config, features, num_classes)
  steps = gdpa_training.make_steps(model, tx, mesh)
  state, frozen = jax.eval_shape(lambda: gdpa_training.init_state(
      model, tx, mesh, seed=0, num_views=num_views, features=features,
      trainable_patterns=config.optim.trainable, num_classes=num_classes))
  replicated = parallel.replicated(mesh)
  cached = 4 * BATCH  # clouds whose features are on the devices
  data = {"depth": jax.ShapeDtypeStruct((cached, num_views, features), jnp.float32),
          "clip": jax.ShapeDtypeStruct((cached, num_views, features), jnp.float32),
          "label": jax.ShapeDtypeStruct((cached,), jnp.int32)}
  text = jax.ShapeDtypeStruct((num_classes, features), jnp.float32)
  epoch_indices = jax.ShapeDtypeStruct((3, BATCH), jnp.int32)  # 3 steps
  args = (state, frozen, text, data, epoch_indices)
  return steps["cached_epoch"], exporting.abstract(args, replicated)


def build_mesh_renderer(mesh, workdirs):
  """tasks/render.py's mesh renderer (tiny preset), its meshes split over the devices."""
  del workdirs
  config = task_config("render", "tiny")
  options = shapenet_render.render_options(config)
  views = cameras.views_array(config.views)
  tetrahedron = mesh_batch.from_arrays(np.eye(4, 3, -1, np.float32) - 0.25,
                                       [[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]])
  packed = mesh_batch.pack([tetrahedron] * BATCH, atlas_size=config.atlas_size)
  render = jax.jit(lambda meshes: mesh_renderer.render(meshes, views, **options).rgb8)
  return render, (exporting.abstract(packed, parallel.data_sharding(mesh)),)


def build_projector(mode: str):
  """The point projector (`render_depth`, its defaults) in `mode`, the clouds split over the devices."""

  def build(mesh, workdirs):
    del workdirs
    views = cameras.views_array(cameras.VIEWS_ZERO_SHOT)
    project = jax.jit(lambda points: points_lib.render_depth(points, views, mode=mode))
    return project, (exporting.data_sharded(mesh, (BATCH, 1024, 3), jnp.float32),)

  return build


BUILDERS = {
    "zeroshot": build_zeroshot,
    "pretrain_step": build_pretrain_step,
    "gdpa_step": build_gdpa_step,
    "mesh_renderer": build_mesh_renderer,
    "projector_hard": build_projector("hard"),
    "projector_soft": build_projector("soft"),
}


# ---------------------------------------------------------------- exports


@pytest.fixture(scope="module")
def workdirs(tmp_path_factory):
  """Where the tasks' tiny CLIPs are made: 224 px (zero-shot) and 64 px (pre-training)."""
  return {task: str(tmp_path_factory.mktemp(f"export_{task}")) for task in ("zeroshot", "pretrain")}


@pytest.fixture(scope="module")
def exported(workdirs):
  """`exported(name, platform)`: the function's module, exported once per module run."""
  return functools.cache(lambda name, platform: export(name, platform, workdirs))


def export(name: str, platform: str, workdirs) -> exporting.Module:
  """BUILDERS[name] exported for `platform` over `exporting.mesh_for` it."""
  mesh = exporting.mesh_for(platform, pallas=bool(GPU_KERNELS[name]))
  return exporting.export(name, platform, lambda: BUILDERS[name](mesh, workdirs))


@pytest.mark.parametrize("name", BUILDERS)
def test_tpu_module_holds_no_gpu_kernel_and_is_sharded(exported, name):
  module = exported(name, "tpu")
  exporting.assert_no_gpu_kernels(module)
  assert module.nr_devices == exporting.NUM_DEVICES, module.where()
  assert exporting.data_parallel_tensors(module), f"{module.where()}: nothing split over the data axis"
  if name in DONATES:
    assert exporting.donated_arguments(module) > 0, f"{module.where()}: the train state is not donated"


@pytest.mark.parametrize("name", BUILDERS)
def test_gpu_module_holds_the_triton_kernels_of_the_gpu_path(exported, name):
  module = exported(name, "cuda")
  assert module.triton_kernels == GPU_KERNELS[name], (
      f"{module.where()}: Triton kernels {sorted(module.triton_kernels)}, "
      f"expected {sorted(GPU_KERNELS[name])}")
  assert not module.custom_calls[exporting.MOSAIC], f"{module.where()}: holds a Mosaic kernel"
  if name in DONATES:
    assert exporting.donated_arguments(module) > 0, f"{module.where()}: the train state is not donated"


def test_the_leak_check_flags_the_gpu_module(exported):
  """The TPU check is not vacuous: the GPU zero-shot module, checked as a TPU one, fails it."""
  gpu = exported("zeroshot", "cuda")
  with pytest.raises(AssertionError, match=r"zeroshot for tpu: the module holds \d+ Triton kernel"):
    exporting.assert_no_gpu_kernels(exporting.Module("zeroshot", "tpu", gpu.text, gpu.nr_devices))


def _choose_pallas_everywhere(*args, **kwargs):
  """A broken `dispatch.resolve`: the Pallas kernels whatever the target."""
  del args, kwargs
  return dispatch.KernelSettings("pallas", "pallas", "pallas")


@pytest.mark.parametrize("breakage, caught", [
    # Only the dispatch is broken: the kernels themselves refuse the TPU.
    ({}, r"^zeroshot: export for tpu failed: UserError: .*cannot run on a TPU"),
    # The kernels believe the TPU is a GPU too: Pallas's TPU lowering meets Triton's kernels
    # (a refusal of their GPU compiler params, or a bare assert there, by lowering order).
    ({"on_tpu": False, "on_gpu": True},
     r"^zeroshot: export for tpu failed: .*(platform gpu cannot be used for tpu|\[pallas)"),
    # The kernels believe the TPU is a CPU: the export passes, interpreted; the module check catches it.
    ({"on_tpu": False}, r"^zeroshot for tpu: the module holds Pallas kernels traced into its ops"),
], ids=["dispatch", "dispatch_and_target_as_gpu", "dispatch_and_target_as_cpu"])
def test_a_broken_dispatch_leaking_pallas_into_the_tpu_path_is_caught(
    monkeypatch, workdirs, breakage, caught):
  monkeypatch.setattr(dispatch, "resolve", _choose_pallas_everywhere)
  for name, value in breakage.items():
    monkeypatch.setattr(backend, name, lambda value=value: value)
  # One device: over an abstract mesh the kernels' custom partitioning fails first (exporting's doc).
  build = lambda: build_zeroshot(parallel.make_mesh(), workdirs)
  with pytest.raises(AssertionError, match=caught):
    exporting.assert_no_gpu_kernels(exporting.export("zeroshot", "tpu", build))
