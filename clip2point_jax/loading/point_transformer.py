"""Point Transformer weights to and from Pointcept's PyTorch state-dict names.

`models/point_transformer.py` names its modules after Pointcept's
`PointTransformerCls` (pointcept/models/point_transformer at d74c646), with
flax's `layers_{j}` for an nn.Sequential's index j, so a name maps by rule:

  torch                                      flax
  enc1.0.linear.weight [out, in]             params enc1/layers_0/linear/kernel [in, out]
  enc2.1.transformer.linear_q.bias           params enc2/layers_1/transformer/linear_q/bias
  enc2.1.transformer.linear_p.1.weight       params .../linear_p/layers_1/scale      (BatchNorm)
  enc2.1.bn1.bias                            params enc2/layers_1/bn1/bias
  enc2.1.bn1.running_mean / running_var      batch_stats enc2/layers_1/bn1/mean / var
  enc2.1.bn1.num_batches_tracked             (dropped; written back as 0)
  cls.8.weight                               params cls/layers_8/kernel
  proj.weight                                params proj/kernel   (the CLIP2Point head)

A Linear's weight is the transpose of the flax kernel; everything else is
copied. `num_batches_tracked` only matters to PyTorch's BatchNorm with
momentum=None, which Pointcept does not use. Checkpoints saved from
DistributedDataParallel (every key under "module.") are read as well.
"""

import re
from typing import Any

import jax
import numpy as np

from clip2point_jax.errors import UserError
from clip2point_jax.models import point_transformer as pt

NUM_BATCHES = "num_batches_tracked"
_DDP_PREFIX = "module."
_SEQUENTIAL = re.compile(r"layers_(\d+)")
_STAGE_KEY = re.compile(r"enc(\d+)\.(\d+)\.")
# Shown per kind of problem before "... and N more".
_SHOW = 8


def _torch_segment(name: str) -> str:
  match = _SEQUENTIAL.fullmatch(name)
  return match.group(1) if match else name


def _modules(params, path=()):
  """(path, leaf dict) of every module holding arrays: Dense (kernel) or BatchNorm (scale)."""
  leaves = {k: v for k, v in params.items() if not isinstance(v, dict)}
  if leaves:
    yield path, leaves
  for name, child in params.items():
    if isinstance(child, dict):
      yield from _modules(child, path + (name,))


def _lookup(tree, path):
  for name in path:
    tree = tree[name]
  return tree


def _layout(params, batch_stats) -> dict[str, tuple[str, tuple[str, ...], bool]]:
  """torch name -> (collection, flax path of the leaf, transposed?) for every array."""
  names = {}
  for path, leaves in _modules(params):
    prefix = ".".join(_torch_segment(p) for p in path)
    if "kernel" in leaves:
      names[f"{prefix}.weight"] = ("params", path + ("kernel",), True)
      if "bias" in leaves:
        names[f"{prefix}.bias"] = ("params", path + ("bias",), False)
    elif "scale" in leaves:
      names[f"{prefix}.weight"] = ("params", path + ("scale",), False)
      names[f"{prefix}.bias"] = ("params", path + ("bias",), False)
      _lookup(batch_stats, path)  # a BatchNorm without running statistics is a broken tree
      names[f"{prefix}.running_mean"] = ("batch_stats", path + ("mean",), False)
      names[f"{prefix}.running_var"] = ("batch_stats", path + ("var",), False)
    else:
      raise ValueError(
          f"point transformer: module {'/'.join(path)} is neither Linear nor BatchNorm")
  return names


def _strip_ddp(state_dict: dict[str, Any]) -> dict[str, Any]:
  if state_dict and all(k.startswith(_DDP_PREFIX) for k in state_dict):
    return {k[len(_DDP_PREFIX):]: v for k, v in state_dict.items()}
  return dict(state_dict)


def _shape(value) -> tuple[int, ...]:
  return tuple(np.shape(value))


def model_for_state_dict(state_dict: dict[str, Any], **fields) -> pt.PointTransformer:
  """The PointTransformer a Pointcept-named state dict holds.

  Read from the weights: blocks and planes per stage, in_channels, the head
  ("cls" for cls.*, "clip" for proj.weight, else "none"), num_classes or
  embed_dim. Strides and neighbours cannot be read from weights: they come
  from `fields` or the defaults, as does anything else `fields` names.
  """
  state_dict = _strip_ddp(state_dict)
  blocks = {}
  for key in state_dict:
    match = _STAGE_KEY.match(key)
    if match:
      stage, index = int(match.group(1)), int(match.group(2))
      blocks[stage] = max(blocks.get(stage, 0), index + 1)
  if not blocks or sorted(blocks) != list(range(1, len(blocks) + 1)):
    raise UserError("not a Point Transformer state dict in Pointcept's names: expected keys "
                    f"enc1.0.*, enc2.0.*, ...; found stages {sorted(blocks)} "
                    f"(first keys: {sorted(state_dict)[:3]})")
  inferred = {"blocks": tuple(blocks[s] for s in sorted(blocks))}
  try:
    inferred["planes"] = tuple(_shape(state_dict[f"enc{s}.0.bn.weight"])[0] for s in sorted(blocks))
    inferred["in_channels"] = _shape(state_dict["enc1.0.linear.weight"])[1]
  except (KeyError, IndexError) as e:
    raise UserError(f"Point Transformer state dict: missing or malformed transition weight {e}; "
                    "expected enc{i}.0.linear.weight and enc{i}.0.bn.weight") from None
  if any(k.startswith("cls.") for k in state_dict):
    inferred["head"] = "cls"
    last = max((k for k in state_dict if re.fullmatch(r"cls\.\d+\.weight", k)),
               key=lambda k: int(k.split(".")[1]))
    inferred["num_classes"] = _shape(state_dict[last])[0]
  elif "proj.weight" in state_dict:
    inferred["head"] = "clip"
    inferred["embed_dim"] = _shape(state_dict["proj.weight"])[0]
  else:
    inferred["head"] = "none"
  return pt.PointTransformer(**{**inferred, **fields})


def _expected_layout(model: pt.PointTransformer):
  shapes = jax.eval_shape(lambda: pt.init_variables(model, jax.random.key(0)))
  return shapes, _layout(shapes["params"], shapes["batch_stats"])


def _problems(kind: str, items: list[str]) -> str:
  shown = ", ".join(items[:_SHOW])
  more = f" and {len(items) - _SHOW} more" if len(items) > _SHOW else ""
  return f"{kind} ({len(items)}): {shown}{more}"


def from_torch_state_dict(state_dict: dict[str, Any],
                          model: pt.PointTransformer | None = None):
  """(params, batch_stats) for `model` from a Pointcept-named state dict.

  Args:
    state_dict: name -> array (numpy, or anything np.asarray reads, such as
      CPU torch tensors), Pointcept's `PointTransformerCls` names, optionally
      all under "module.".
    model: the network to fill; default `model_for_state_dict(state_dict)`.

  Returns:
    params, batch_stats: nested dicts of float32 numpy arrays, the layout of
    `pt.init_variables(model, ...)`.

  Raises:
    UserError naming the missing keys, unexpected keys and wrong shapes.
  """
  state_dict = _strip_ddp(state_dict)
  model = model or model_for_state_dict(state_dict)
  shapes, layout = _expected_layout(model)
  counters = {name.rsplit(".", 1)[0] + "." + NUM_BATCHES
              for name, (collection, _, _) in layout.items() if collection == "batch_stats"}
  missing = sorted(set(layout) - set(state_dict))
  unexpected = sorted(set(state_dict) - set(layout) - counters)
  wrong = []
  for name in sorted(set(layout) & set(state_dict)):
    collection, path, transposed = layout[name]
    want = tuple(_lookup(shapes[collection], path).shape)
    want = want[::-1] if transposed else want
    if _shape(state_dict[name]) != want:
      wrong.append(f"{name} {list(_shape(state_dict[name]))} (expected {list(want)})")
  if missing or unexpected or wrong:
    parts = [_problems(kind, items) for kind, items in
             (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", wrong))
             if items]
    raise UserError(f"Point Transformer state dict does not fit {_describe(model)}: "
                    + "; ".join(parts))
  trees = {"params": {}, "batch_stats": {}}
  for name, (collection, path, transposed) in layout.items():
    value = np.asarray(state_dict[name], np.float32)
    node = trees[collection]
    for segment in path[:-1]:
      node = node.setdefault(segment, {})
    node[path[-1]] = np.ascontiguousarray(value.T) if transposed else value
  return trees["params"], trees["batch_stats"]


def to_torch_state_dict(params, batch_stats) -> dict[str, np.ndarray]:
  """Pointcept-named numpy arrays (float32; num_batches_tracked int64 0) for a param tree."""
  params = jax.tree.map(np.asarray, params)
  batch_stats = jax.tree.map(np.asarray, batch_stats)
  out = {}
  for name, (collection, path, transposed) in _layout(params, batch_stats).items():
    value = np.asarray(_lookup(params if collection == "params" else batch_stats, path), np.float32)
    out[name] = np.ascontiguousarray(value.T) if transposed else value
    if name.endswith(".running_var"):
      out[name[:-len("running_var")] + NUM_BATCHES] = np.array(0, np.int64)
  return out


def _describe(model: pt.PointTransformer) -> str:
  return (f"PointTransformer(blocks={model.blocks}, planes={model.planes}, "
          f"in_channels={model.in_channels}, head={model.head!r})")
