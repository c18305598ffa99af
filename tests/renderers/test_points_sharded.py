"""The projector splits over the devices that hold the batch: no device renders another's clouds."""

from tests.conftest import run_with_fake_devices


def test_hard_and_soft_render_are_batch_parallel_on_8_devices():
  run_with_fake_devices("""
    import re
    import jax, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from renderers import cameras, points as projector

    mesh = Mesh(np.asarray(jax.devices()), ("data",))
    clouds = np.random.default_rng(0).normal(size=(16, 64, 3)).astype(np.float32)
    sharded = jax.device_put(clouds, NamedSharding(mesh, P("data")))
    views = cameras.VIEWS_ZERO_SHOT[:2]
    for name, render in [
        ("hard", lambda p: projector.render_depth(projector.normalize_points(p), views, image_size=32)),
        ("soft", lambda p: projector.render_depth(projector.normalize_points(p), views, image_size=32,
                                                  mode="soft"))]:
      compiled = jax.jit(render).lower(sharded).compile()
      hlo = compiled.as_text()
      collectives = re.findall(r"all-gather|all-reduce|all-to-all|collective-permute", hlo)
      assert not collectives, (name, sorted(set(collectives)))
      # Each device's program holds its own 2 clouds' pixels, not all 16 clouds'.
      assert "f32[2,2,32,32]" in hlo.replace(" ", ""), name
      assert "f32[16,2,32,32]" not in hlo.replace(" ", ""), name
      out = jax.jit(render)(sharded)
      assert out.sharding.spec[0] == "data", (name, out.sharding)
      np.testing.assert_array_equal(np.asarray(out), np.asarray(jax.jit(render)(clouds)))
  """)
