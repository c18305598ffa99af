"""Computation per cloud and trainable parameters (the supplementary's Table 1).

    python -m clip2point_jax.main --config configs/complexity.py --workdir runs/complexity

Rows: zero-shot classification (6 views, CLIP's image tower), the GDPA
(10 views through both encoders, then the adapters), one pre-training
step (two depth maps per cloud through the trainable depth encoder, forward
and backward, and one image through the frozen image encoder), and the 3D
encoder of the supplementary's Sec. 4 (a Point Transformer, one feature per
cloud; all its parameters are trained when it is pre-trained).

MACs come from XLA's cost analysis of the jitted function: its "flops"
divided by 2 and by the clouds in the batch. Nothing runs: the function is
lowered on abstract shapes (random weights are not even made) and compiled
(`cost_analysis="compiled"`, the default; "lowered" analyses the program
before XLA's optimisations, within about 1% and several times faster).

What XLA counts: every dot and convolution (2 flops per multiply-add), and
one flop per element of elementwise arithmetic (layer norms, softmax, GELU,
residual adds, the projector's and the adapters' arithmetic), which flops/2
books as half a MAC each. With ViT-B/32 the encoders' matmuls, counted by
hand, are 4.409 GMACs per image, 88.18 G for the GDPA's 20 images: 99.7% of
the 88.42 G XLA reports (the paper's Table 1: 88.23). Not counted:
transcendentals (exp, rsqrt, sigmoid: XLA reports them apart; they are in the
JSON), data movement (the z-buffer's scatter-min, gathers, transposes), the
text tower (its class features are computed once per class list, not per
cloud), reading and preprocessing on the host, and, for pre-training, the
optimiser update (per step, not per cloud).

Writes `complexity.json` and prints the table.
"""

import dataclasses
import os

import jax
import jax.numpy as jnp

from clip2point_jax.core import paths as storage  # `paths` names other things in tasks
from clip2point_jax.errors import UserError
from clip2point_jax.loading import hf_clip, point_encoder
from clip2point_jax.models import clip as clip_lib
from clip2point_jax.models import gdpa
from clip2point_jax.models import point_transformer as pt
from clip2point_jax.projection import encode, point_encode, settings, zeroshot
from clip2point_jax.tools import make_tiny_clip
from clip2point_jax.training import gdpa as training
from clip2point_jax.training import loop, losses
from renderers import cameras

# The paper's NT-Xent temperature (supplementary Sec. 1); it does not change the cost.
PRETRAIN_TEMPERATURE = 0.7


def shapes_config(name: str) -> clip_lib.CLIPConfig:
  """The CLIP architecture to analyse: "" = ViT-B/32, "tiny" = the test CLIP, else a checkpoint's."""
  if not name:
    return clip_lib.CLIPConfig()
  if name == "tiny":
    return clip_lib.config_from_hf_dict(make_tiny_clip.default_hf_config())
  return hf_clip.read_config(hf_clip.resolve_checkpoint_dir(name))


ANALYSES = ("compiled", "lowered")


def analyse(fn, *abstract_args, batch: int, analysis: str = "compiled") -> dict:
  """XLA's cost analysis of `jax.jit(fn)` on abstract arguments, per cloud.

  analysis: "compiled" analyses the optimised program XLA would run;
  "lowered" the program before optimisation (several times faster to get,
  within about 1% here; the tests use it for the small CLIP).
  """
  if analysis not in ANALYSES:
    raise UserError(f"config.cost_analysis={analysis!r}; use one of {', '.join(ANALYSES)}")
  lowered = jax.jit(fn).lower(*abstract_args)
  cost = lowered.compile().cost_analysis() if analysis == "compiled" else lowered.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  if not cost or "flops" not in cost:
    raise UserError(f"XLA on {jax.default_backend()} gives no cost analysis; run on CPU (JAX_PLATFORMS=cpu)")
  return {"gmacs_per_cloud": float(cost["flops"]) / 2 / batch / 1e9,
          "transcendentals_per_cloud": float(cost.get("transcendentals", 0.0)) / batch}


class _Shapes:
  """The abstract inputs every row shares: encoder params, points, text features, the projector."""

  def __init__(self, config):
    self.cfg = cfg = shapes_config(config.clip.name)
    self.size, self.batch, self.dim = cfg.vision.image_size, config.batch_size, cfg.projection_dim
    encoder = clip_lib.CLIPVisionEncoder(cfg)
    self.vision = jax.eval_shape(
        lambda: encoder.init(jax.random.key(0), jnp.zeros((1, self.size, self.size, 3))))["params"]
    self.encode_image = lambda params, images: encoder.apply({"params": params}, images)
    # CLIP2Point's own path, as Table 1 counts it: depth copied to 3 channels
    # (the fast path folds the copy into the patch weights: 77 M MACs less per view).
    self.encode_depth = lambda params, depth: self.encode_image(params, zeroshot.depth_to_clip_images(depth))
    self.points = jax.ShapeDtypeStruct((self.batch, config.num_points, 3), jnp.float32)
    self.text = jax.ShapeDtypeStruct((config.num_classes, self.dim), jnp.float32)
    # The analysed CLIP's input size, whatever the config's render block says.
    self.render = dataclasses.replace(settings.from_config(config.render, config.views), image_size=self.size)
    self.vision_count = gdpa.count_params(self.vision)
    self.analysis = config.cost_analysis


def zero_shot_row(config, s: _Shapes) -> dict:
  """Render the zero-shot views, encode them, compare with the class texts."""
  render = dataclasses.replace(s.render, views=tuple(map(tuple, config.views_zero_shot)))

  def forward(params, text, points):
    return zeroshot.view_similarities(encode.points_to_features(s.encode_depth, params, points, render), text)

  cost = analyse(forward, s.vision, s.text, s.points, batch=s.batch, analysis=s.analysis)
  return dict(method=f"zero-shot ({len(config.views_zero_shot)} views)", what="evaluation forward",
              trainable_params=0, frozen_params=s.vision_count, **cost)


def gdpa_row(config, s: _Shapes) -> dict:
  """Render the views once, both encoders, the adapters in evaluation mode."""
  if gdpa.kind_of(config.model) != "gdpa":  # Table 1 counts the GDPA; a probe's row would be mislabelled.
    raise UserError(f"config.model.kind={gdpa.kind_of(config.model)!r}: complexity counts the GDPA only")
  model, _, trainable = training.build(config, s.dim)
  variables = jax.eval_shape(lambda: gdpa.init_variables(model, jax.random.key(0), len(config.views), s.dim))

  def forward(encoders, variables, text, points):
    depth = encode.depth_maps(points, s.render)
    features = {path: encode.view_features(s.encode_depth, encoders[f"{path}_encoder"], depth)
                for path in ("depth", "clip")}
    return model.apply(variables, features["depth"], features["clip"], text, train=False)

  encoders = {"depth_encoder": s.vision, "clip_encoder": s.vision}
  cost = analyse(forward, encoders, variables, s.text, s.points, batch=s.batch, analysis=s.analysis)
  return dict(method=f"GDPA ({len(config.views)} views, both paths)", what="evaluation forward",
              trainable_params=gdpa.count_params(trainable), frozen_params=2 * s.vision_count, **cost)


def pretrain_row(config, s: _Shapes) -> dict:
  """One view at two distances per cloud through the depth encoder, forward and
  backward; the cloud's image through the frozen image encoder; the loss."""
  b, size = s.batch, s.size
  view = jnp.asarray(cameras.views_array(config.views[:1]))

  def step(depth_params, w, image_params, points, images):
    def loss(depth_params, w):
      distance = jnp.broadcast_to(jnp.asarray(config.pretrain_distances, jnp.float32), (b, 2))
      pair = jnp.broadcast_to(view, (b, 2, 2))
      depth = encode.depth_maps(points, s.render, views=pair, distance=distance)
      features = s.encode_image(depth_params, zeroshot.depth_to_clip_images(depth.reshape(2 * b, size, size)))
      f_image = jax.lax.stop_gradient(s.encode_image(image_params, clip_lib.normalize_images(images)))
      return losses.pretrain_loss(features[:b], features[b:], f_image, w,
                                  temperature=PRETRAIN_TEMPERATURE)[0]
    return jax.grad(loss, argnums=(0, 1))(depth_params, w)

  images = jax.ShapeDtypeStruct((b, size, size, 3), jnp.float32)
  cost = analyse(step, s.vision, jax.ShapeDtypeStruct((), jnp.float32), s.vision, s.points, images, batch=b,
                 analysis=s.analysis)
  return dict(method="pre-training step", what="training forward+backward, loss: losses.pretrain_loss",
              trainable_params=s.vision_count + 1, frozen_params=s.vision_count, **cost)


def point_transformer_row(config, s: _Shapes) -> dict:
  """The 3D encoder (supplementary Sec. 4) classifying a cloud: one feature against the class texts.

  Beside XLA's count, `dense_gmacs_per_cloud` is the analytic count of its
  Linear layers and attention sums (`point_transformer.dense_macs`). XLA
  counts the rest too (BatchNorm, softmax, kNN distances), but a while loop
  once: farthest-point sampling's loop body for one sample, not for all.
  """
  model = point_encoder.model_from_config(config.point_transformer, s.dim).clone(dtype=jnp.float32)
  variables = jax.eval_shape(lambda: pt.init_variables(model, jax.random.key(0)))

  def forward(variables, text, points):
    features = point_encode.cloud_features(model, variables, points)
    return clip_lib.l2_normalize(features) @ text.T

  cost = analyse(forward, variables, s.text, s.points, batch=s.batch, analysis=s.analysis)
  dense = pt.dense_macs(model, config.num_points) / 1e9
  return dict(method=f"Point Transformer ({config.point_transformer.preset}, 1 feature)",
              what=f"evaluation forward; its Linear layers and attention: {dense:.2f} GMACs",
              trainable_params=pt.count_params(variables["params"]), frozen_params=0,
              dense_gmacs_per_cloud=dense, **cost)


# Each row's function and what it is called while XLA works on it (seconds each, tens on a busy CPU).
ROWS = (("the zero-shot forward", zero_shot_row), ("the GDPA forward", gdpa_row),
        ("one pre-training step", pretrain_row),
        ("the Point Transformer forward", point_transformer_row))


def analyse_rows(config, shapes: _Shapes) -> list[dict]:
  """Every row of ROWS, each announced before XLA starts on it."""
  verb = "compiling" if config.cost_analysis == "compiled" else "lowering"
  rows = []
  for i, (name, row) in enumerate(ROWS, 1):
    loop.say(f"complexity: {i}/{len(ROWS)} tracing and {verb} {name} for XLA's cost analysis…")
    rows.append(row(config, shapes))
  return rows


def run(config, workdir: str) -> dict:
  """Analyses the rows; returns (and writes) them."""
  storage.path(workdir).mkdir(parents=True, exist_ok=True)
  # 1. Mesh: none, nothing runs. 2. Data and 3. model: abstract shapes only.
  shapes = _Shapes(config)
  # 4. Steps: each row's function, lowered and analysed. 5. Restore: nothing to restore.
  # 6. Evals and 7. loop: one analysis per row.
  rows = analyse_rows(config, shapes)
  result = {"clip": config.clip.name or "ViT-B/32 shapes (random weights)", "backend": jax.default_backend(),
            "analysis": config.cost_analysis,
            "batch_size": config.batch_size, "num_points": config.num_points,
            "num_classes": config.num_classes, "rows": rows,
            "counted": "XLA cost analysis flops / 2 / clouds: dots and convolutions, elementwise "
                       "arithmetic as half a MAC per element",
            "not_counted": "transcendentals, scatter/gather data movement, the text tower (once per "
                           "class list), host preprocessing, the optimiser update"}
  if loop.is_host0():
    storage.write_json(os.path.join(workdir, "complexity.json"), result, indent=2)
    print(format_table(result))
  return result


def format_table(result: dict) -> str:
  """The rows as a Markdown table."""
  lines = [f"Complexity per cloud, {result['clip']}, {result['num_points']} points, "
           f"XLA cost analysis of the {result['analysis']} program on {result['backend']}:", "",
           "| method | GMACs / cloud | trainable params | counted |", "| --- | ---: | ---: | --- |"]
  for r in result["rows"]:
    params = f"{r['trainable_params'] / 1e6:.2f}M ({r['trainable_params']:,})"
    lines.append(f"| {r['method']} | {r['gmacs_per_cloud']:.2f} | {params} | {r['what']} |")
  return "\n".join(lines)
