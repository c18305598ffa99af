"""orbax checkpoints: round trip, retention of latest + best across restarts, sharded restore."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clip2point_jax.core import checkpoints
from clip2point_jax.errors import UserError
from tests.conftest import run_with_fake_devices


def _state(step, rng):
  return {"params": {"w": jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)},
          "opt": (jnp.asarray(rng.normal(size=3), jnp.float32),), "step": jnp.int32(step)}


def test_round_trip_and_meta(tmp_path):
  rng = np.random.default_rng(0)
  state = _state(7, rng)
  ckpt = checkpoints.Checkpointer(str(tmp_path / "ckpt"), async_save=False)
  assert ckpt.latest_step() is None
  ckpt.save(7, state, meta={"epoch": 3, "config": {"lr": 0.1}})
  ckpt.close()
  reopened = checkpoints.Checkpointer(str(tmp_path / "ckpt"))
  restored, meta = reopened.restore(jax.eval_shape(lambda: state))
  jax.tree.map(np.testing.assert_array_equal, restored, state)
  assert meta == {"epoch": 3, "config": {"lr": 0.1}}
  reopened.close()


def test_read_part_reads_a_subtree_and_refuses_one_cut_from_its_paths(tmp_path):
  state = _state(3, np.random.default_rng(1))
  ckpt = checkpoints.Checkpointer(str(tmp_path / "ckpt"), async_save=False)
  ckpt.save(3, state)
  ckpt.close()
  step_dir = str(tmp_path / "ckpt" / "3")
  part = checkpoints.read_part(step_dir, lambda t: {"params": t["params"]}, name="run",
                               kind="checkpoint", what="w")
  np.testing.assert_array_equal(part["params"]["w"], state["params"]["w"])
  # Without its outer key the partial restore would fill {"w"} with zeros, silently.
  with pytest.raises(ValueError, match=r"\['w'\] is not a path of the stored tree"):
    checkpoints.read_part(step_dir, lambda t: t["params"], name="run", kind="checkpoint", what="w")


def test_keeps_latest_and_best_across_a_restart(tmp_path):
  rng = np.random.default_rng(1)
  directory = str(tmp_path / "ckpt")
  ckpt = checkpoints.Checkpointer(directory, keep=2, best_metric="val", best_mode="max")
  for step, val in [(1, 0.2), (2, 0.9), (3, None), (4, 0.4)]:
    ckpt.save(step, _state(step, rng), metrics=None if val is None else {"val": val})
  ckpt.close()
  ckpt = checkpoints.Checkpointer(directory, keep=2, best_metric="val", best_mode="max")
  assert ckpt.all_steps() == [2, 3, 4] and ckpt.best_step() == 2
  for step in (5, 6):
    ckpt.save(step, _state(step, rng))
  ckpt.wait()
  assert ckpt.all_steps() == [2, 5, 6] and ckpt.latest_step() == 6 and ckpt.best_step() == 2
  restored, _ = ckpt.restore(jax.eval_shape(lambda: _state(0, rng)), step=2)
  assert int(restored["step"]) == 2
  ckpt.close()


def test_errors_name_the_folder(tmp_path):
  rng = np.random.default_rng(2)
  ckpt = checkpoints.Checkpointer(str(tmp_path / "ckpt"), async_save=False)
  with pytest.raises(UserError, match="no checkpoint in .*ckpt"):
    ckpt.restore(jax.eval_shape(lambda: _state(0, rng)))
  ckpt.save(1, _state(1, rng))
  wrong = {"params": {"w": jax.ShapeDtypeStruct((5, 3), jnp.float32)}}
  with pytest.raises(UserError, match="does not fit"):
    ckpt.restore(wrong)
  with pytest.raises(UserError, match="step 9"):
    ckpt.restore(jax.eval_shape(lambda: _state(0, rng)), step=9)
  ckpt.close()


def test_sharded_state_restores_onto_its_shardings(tmp_path):
  run_with_fake_devices(f"""
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P
    from clip2point_jax.core import checkpoints, parallel
    mesh = parallel.make_mesh()
    sharded = NamedSharding(mesh, P("data"))
    state = {{"w": jax.device_put(jnp.arange(32.0).reshape(16, 2), sharded),
             "b": jax.device_put(jnp.ones(3), parallel.replicated(mesh))}}
    ckpt = checkpoints.Checkpointer({str(tmp_path / 'ckpt')!r})
    ckpt.save(1, state)
    ckpt.wait()
    restored, _ = ckpt.restore(checkpoints.abstract_like(state))
    assert restored["w"].sharding == sharded, restored["w"].sharding
    assert len(restored["w"].addressable_shards) == 8
    np.testing.assert_array_equal(restored["w"], state["w"])
    ckpt.close()
  """)
