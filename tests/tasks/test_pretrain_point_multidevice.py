"""The 3D encoder's pre-training step data-parallel over 8 fake CPU devices against 1 device.

BatchNorm's statistics are over the global batch under jit, so the loss, the
gradients, the update and the running statistics must not depend on how the
batch is split. Compared in float64 (the points are still rounded to float32
by the shared preprocessing, hence tolerances of ~1e-6): in float32 this tiny network's gradients
differ by up to ~1e-3 relative between the two layouts, the rounding of
differently ordered sums amplified by BatchNorms over a few hundred rows.
"""

from tests.conftest import FAST_COMPILE, run_with_fake_devices


def test_one_point_transformer_step_on_8_devices_equals_1_device():
  run_with_fake_devices(f"""
    import os
    # Compile fast; both sides of the comparison use it.
    os.environ["XLA_FLAGS"] += " {FAST_COMPILE}"
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp, numpy as np
    from clip2point_jax.core import parallel, rules
    from clip2point_jax.core.config_args import load_sibling
    from clip2point_jax.loading import point_encoder
    from clip2point_jax.models import clip as clip_lib
    from clip2point_jax.training import optim, point_pretrain, pretrain

    assert jax.device_count() == 8
    config = load_sibling("configs/x.py", "pretrain").get_config("tiny,encoder=point_transformer")
    # 128 points: stages of 128, 32 and 8 points. Every stage keeps more points than its k: a
    # stage of k points or fewer is one neighbourhood whose offsets sum to zero, which puts the
    # missing neighbours (zero offsets) exactly at the mean of the position encoding's
    # BatchNorm, where ReLU(0 +- rounding) flips with the summation order (as in PyTorch).
    config.point_transformer.neighbours = (8, 8, 4)
    vision = clip_lib.CLIPVisionConfig(image_size=32, patch_size=16, hidden_size=32,
                                       intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    image = clip_lib.CLIPVisionEncoder(clip_lib.CLIPConfig(vision=vision, projection_dim=16))
    model = point_encoder.model_from_config(config.point_transformer, 16).clone(dtype=jnp.float64)
    models = point_pretrain.Encoders(model, image)
    rng = np.random.default_rng(0)
    b, m = 8, 20  # one cloud (two augmentations) per device
    batch = {{"points": rng.normal(size=(b, 128, 3)),
             "view": rng.integers(0, 10, b).astype(np.int32),
             "row": rng.permutation(m)[:b].astype(np.int32)}}
    cache = rng.normal(size=(m, 10, 16))
    params, batch_stats = jax.tree.map(lambda x: np.asarray(x, np.float64),
                                       point_pretrain.initial_variables(config, model))

    def one_step(devices):
      mesh = parallel.make_mesh(devices)
      trainable, frozen = rules.split(params, config.optim.trainable)
      assert not frozen
      state, tx, schedule = pretrain.initial_state(config, trainable, 50, batch_stats)
      state["step"] = np.int32(3)
      shardings = pretrain.state_shardings(mesh, state, ())
      state = jax.device_put(state, shardings)
      step = pretrain.jitted_train_step(config, models, tx, schedule, live=False, period=50, mesh=mesh,
                                        state=state, frozen=frozen, shardings=shardings,
                                        frozen_shardings={{}}, make_step=point_pretrain.make_train_step)
      batch_on_mesh = parallel.global_batch(mesh, batch)
      assert len(batch_on_mesh["points"].sharding.device_set) == len(devices)
      on_mesh = jax.device_put(cache, parallel.replicated(mesh))
      new_state, metrics = step(state, frozen, batch_on_mesh, on_mesh)
      new_state = jax.device_get(new_state)
      # The step's own gradients, from LAMB's first moment: after its first update from zero,
      # m = (1 - b1) g (in float32: ~1e-7 relative, far below the tolerances below).
      lamb = new_state["opt_state"]
      assert isinstance(lamb, optim.LambState) and int(lamb.count) == 1
      grads = jax.tree.map(lambda m: np.asarray(m, np.float64) / (1 - config.optim.b1), lamb.mu)
      return new_state, jax.device_get(metrics), grads

    one, one_metrics, one_grads = one_step(jax.devices()[:1])
    eight, eight_metrics, eight_grads = one_step(jax.devices())
    for key in ("loss", "l_intra", "l_cross", "grad_norm"):
      np.testing.assert_allclose(eight_metrics[key], one_metrics[key], rtol=1e-6, err_msg=key)
    scale = max(float(np.abs(g).max()) for g in jax.tree.leaves(one_grads))
    close = lambda a, c: np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-6 * scale)
    jax.tree.map(close, eight_grads, one_grads)
    jax.tree.map(lambda a, c: np.testing.assert_allclose(a, c, rtol=1e-6, atol=1e-9),
                 eight["batch_stats"], one["batch_stats"])
    # LAMB's first update is about lr * sign(g) per element: compared where g is not zero up to
    # rounding (a Linear's bias before a BatchNorm or a softmax has a zero gradient).
    nonzero = jax.tree.map(lambda g: np.abs(g) > 1e-4 * scale, one_grads)
    jax.tree.map(lambda a, c, keep: np.testing.assert_allclose(a[keep], c[keep], rtol=1e-6, atol=1e-8),
                 eight["params"], one["params"], nonzero)
    assert sum(int(k.sum()) for k in jax.tree.leaves(nonzero)) > 1000
    assert not np.allclose(one["params"]["w"], 1.0)
    moved = jax.tree.map(lambda a, c: float(np.abs(a - c).max()), one["batch_stats"], batch_stats)
    assert min(jax.tree.leaves(moved)) > 0
    print("ok")
  """)
