"""orbax checkpoints: round trip, retention of latest + best across restarts, sharded restore,
saves that never make the step loop wait."""

import threading

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


def test_copy_on_devices_gives_new_buffers_with_the_same_values():
  state = _state(4, np.random.default_rng(3))
  state["count"] = 7  # not an array: kept as it is
  copied = checkpoints.copy_on_devices(state)
  assert copied["count"] == 7
  arrays = lambda tree: [x for x in jax.tree.leaves(tree) if isinstance(x, jax.Array)]
  assert len(arrays(copied)) == 3
  for original, copy in zip(arrays(state), arrays(copied)):
    assert copy.unsafe_buffer_pointer() != original.unsafe_buffer_pointer()
    assert copy.sharding == original.sharding and copy.dtype == original.dtype
    np.testing.assert_array_equal(copy, original)


def test_an_async_save_returns_at_once_and_the_step_may_donate_the_state(tmp_path, monkeypatch):
  rng = np.random.default_rng(4)
  state = _state(3, rng)
  expected = jax.device_get(state)
  ckpt = checkpoints.Checkpointer(str(tmp_path / "ckpt"))
  release = threading.Event()
  orbax_save = ckpt._manager.save  # pylint: disable=protected-access

  def held_save(*args, **kwargs):
    assert release.wait(30)
    return orbax_save(*args, **kwargs)

  monkeypatch.setattr(ckpt._manager, "save", held_save)  # pylint: disable=protected-access
  ckpt.save(3, state, meta={"curves": [1]})
  # The next step takes the state's buffers (donation, which the CPU ignores) before orbax sees them.
  layout = jax.eval_shape(lambda: state)
  jax.tree.map(lambda x: x.delete(), state)
  release.set()
  assert ckpt.latest_step() == 3  # waits for the hand-over
  restored, meta = ckpt.restore(layout)
  jax.tree.map(np.testing.assert_array_equal, restored, expected)
  assert meta == {"curves": [1]}
  ckpt.close()


def test_a_background_save_that_failed_is_raised_by_the_next_call(tmp_path, monkeypatch):
  ckpt = checkpoints.Checkpointer(str(tmp_path / "ckpt"))

  def full_disk(*args, **kwargs):
    raise OSError("No space left on device")

  monkeypatch.setattr(ckpt._manager, "save", full_disk)  # pylint: disable=protected-access
  ckpt.save(1, _state(1, np.random.default_rng(5)))
  with pytest.raises(OSError, match="No space left"):
    ckpt.save(2, _state(2, np.random.default_rng(5)))
  ckpt.save(3, _state(3, np.random.default_rng(5)))
  with pytest.raises(OSError, match="No space left"):
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
