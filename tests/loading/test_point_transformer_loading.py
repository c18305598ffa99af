"""Point Transformer weights through Pointcept's state-dict names and back."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clip2point_jax.errors import UserError
from clip2point_jax.loading import point_transformer as loader
from clip2point_jax.models import point_transformer as pt

torch = pytest.importorskip("torch")
torch.set_num_threads(1)
tnn = torch.nn


# Pointcept's module tree (point_transformer_seg.py / _cls.py), parameters only: its
# forward needs pointops' CUDA kernels, and only the names and shapes matter here.
class _Layer(tnn.Module):
  def __init__(self, c, share=8):
    super().__init__()
    self.linear_q, self.linear_k, self.linear_v = (tnn.Linear(c, c) for _ in range(3))
    self.linear_p = tnn.Sequential(tnn.Linear(3, 3), tnn.BatchNorm1d(3), tnn.ReLU(), tnn.Linear(3, c))
    self.linear_w = tnn.Sequential(tnn.BatchNorm1d(c), tnn.ReLU(), tnn.Linear(c, c // share),
                                   tnn.BatchNorm1d(c // share), tnn.ReLU(),
                                   tnn.Linear(c // share, c // share))


class _Bottleneck(tnn.Module):
  def __init__(self, c):
    super().__init__()
    self.linear1, self.bn1 = tnn.Linear(c, c, bias=False), tnn.BatchNorm1d(c)
    self.transformer = _Layer(c)
    self.bn2 = tnn.BatchNorm1d(c)
    self.linear3, self.bn3 = tnn.Linear(c, c, bias=False), tnn.BatchNorm1d(c)


class _TransitionDown(tnn.Module):
  def __init__(self, c_in, c, stride):
    super().__init__()
    self.linear = tnn.Linear(c_in + (3 if stride != 1 else 0), c, bias=False)
    self.bn = tnn.BatchNorm1d(c)


class _PointTransformerCls(tnn.Module):
  def __init__(self, blocks, in_channels=6, num_classes=40):
    super().__init__()
    c_in = in_channels
    for i, (c, n, stride) in enumerate(zip(pt.PLANES, blocks, pt.STRIDES)):
      setattr(self, f"enc{i + 1}", tnn.Sequential(
          _TransitionDown(c_in, c, stride), *(_Bottleneck(c) for _ in range(1, n))))
      c_in = c
    self.cls = tnn.Sequential(tnn.Linear(512, 256), tnn.BatchNorm1d(256), tnn.ReLU(), tnn.Dropout(0.5),
                              tnn.Linear(256, 128), tnn.BatchNorm1d(128), tnn.ReLU(), tnn.Dropout(0.5),
                              tnn.Linear(128, num_classes))


def _random_state_dict(module, seed=0):
  """The module's state dict as numpy, every float entry drawn anew (running_var positive)."""
  rng = np.random.default_rng(seed)
  out = {}
  for name, value in module.state_dict().items():
    if name.endswith("num_batches_tracked"):
      out[name] = np.array(int(rng.integers(1, 1000)), np.int64)
    elif name.endswith("running_var"):
      out[name] = rng.uniform(0.5, 2.0, size=value.shape).astype(np.float32)
    else:
      out[name] = rng.normal(size=value.shape).astype(np.float32)
  return out


def _load_into(module, state_dict):
  module.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state_dict.items()})
  return module.eval()


@pytest.fixture(scope="module")
def cls38():
  """Pointcept's PointTransformer-Cls38 with random weights: (torch module, numpy state dict)."""
  module = _PointTransformerCls(pt.PRESETS["cls38"])
  state = _random_state_dict(module)
  return _load_into(module, state), state


def test_names_and_shapes_are_pointcepts():
  """Every name and shape of the flax tree, through the map, is one of Pointcept's; counts agree."""
  for preset in ("authors", "cls26", "cls50"):
    module = _PointTransformerCls(pt.PRESETS[preset], in_channels=6, num_classes=40)
    model = pt.preset(preset, head="cls", in_channels=6, num_classes=40)
    shapes = jax.eval_shape(lambda: pt.init_variables(model, jax.random.key(0)))
    zeros = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
    mapped = loader.to_torch_state_dict(zeros["params"], zeros["batch_stats"])
    want = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    assert {k: v.shape for k, v in mapped.items()} == want
    torch_count = sum(p.numel() for p in module.parameters())
    assert pt.count_params(shapes["params"]) == torch_count


def test_round_trip_through_torch_names(cls38):
  _, state = cls38
  params, batch_stats = loader.from_torch_state_dict(state)
  back = loader.to_torch_state_dict(params, batch_stats)
  assert set(back) == set(state)
  for name, value in state.items():
    if name.endswith("num_batches_tracked"):
      assert back[name] == 0  # not kept: Pointcept's BatchNorms have a fixed momentum
    else:
      np.testing.assert_array_equal(back[name], value, err_msg=name)
  # And the trees are the model's own layout.
  model = loader.model_for_state_dict(state)
  assert model.blocks == (1, 2, 2, 2, 2) and model.head == "cls" and model.in_channels == 6
  shapes = jax.eval_shape(lambda: pt.init_variables(model, jax.random.key(0)))
  assert jax.tree.structure(shapes["params"]) == jax.tree.structure(params)
  assert jax.tree.map(lambda s: s.shape, shapes["batch_stats"]) == jax.tree.map(np.shape, batch_stats)


def test_a_linear_and_a_batchnorm_compute_what_torch_computes(cls38):
  module, state = cls38
  params, batch_stats = loader.from_torch_state_dict(state)
  x = np.random.default_rng(1).normal(size=(5, 64)).astype(np.float32)
  with torch.no_grad():
    linear = module.enc2[1].transformer.linear_q(torch.from_numpy(x)).numpy()
    norm = module.enc2[1].bn1(torch.from_numpy(x)).numpy()
  q = params["enc2"]["layers_1"]["transformer"]["linear_q"]
  np.testing.assert_allclose(nn.Dense(64).apply({"params": q}, x), linear, rtol=1e-5, atol=1e-5)
  bn = pt._batch_norm(jnp.float32, None, "bn")  # the model's own BatchNorm settings
  variables = {"params": params["enc2"]["layers_1"]["bn1"],
               "batch_stats": batch_stats["enc2"]["layers_1"]["bn1"]}
  np.testing.assert_allclose(bn.apply(variables, x, use_running_average=True), norm,
                             rtol=1e-5, atol=1e-5)


def test_ddp_prefix_and_clip_head():
  model = pt.preset("cls26", head="clip", embed_dim=24)
  shapes = jax.eval_shape(lambda: pt.init_variables(model, jax.random.key(0)))
  rng = np.random.default_rng(2)
  variables = jax.tree.map(lambda s: rng.normal(size=s.shape).astype(np.float32), shapes)
  state = loader.to_torch_state_dict(variables["params"], variables["batch_stats"])
  assert state["proj.weight"].shape == (24, 512) and "proj.bias" not in state
  wrapped = {"module." + k: v for k, v in state.items()}
  params, _ = loader.from_torch_state_dict(wrapped)
  assert loader.model_for_state_dict(wrapped).embed_dim == 24
  np.testing.assert_array_equal(params["proj"]["kernel"], variables["params"]["proj"]["kernel"])


def test_bad_state_dicts_name_what_is_wrong(cls38):
  _, state = cls38
  broken = dict(state)
  del broken["enc3.1.transformer.linear_v.bias"]
  broken["enc3.1.transformer.linear_z.weight"] = np.zeros((2, 2), np.float32)
  broken["enc4.1.linear1.weight"] = np.zeros((256, 255), np.float32)
  with pytest.raises(UserError) as info:
    loader.from_torch_state_dict(broken)
  message = str(info.value)
  assert "missing keys (1): enc3.1.transformer.linear_v.bias" in message
  assert "unexpected keys (1): enc3.1.transformer.linear_z.weight" in message
  assert "enc4.1.linear1.weight [256, 255] (expected [256, 256])" in message
  with pytest.raises(UserError, match="missing keys"):
    loader.from_torch_state_dict(state, pt.preset("cls50", head="cls", in_channels=6))
  with pytest.raises(UserError, match="not a Point Transformer"):
    loader.from_torch_state_dict({"backbone.weight": np.zeros(3)})
