"""The pre-training step data-parallel over 8 fake CPU devices against 1 device."""

from tests.conftest import run_with_fake_devices


def test_one_step_on_8_devices_equals_1_device_and_groups_follow_the_formula():
  run_with_fake_devices("""
    import os
    # Compile fast (a third of the time here); both sides of the comparison use it.
    os.environ["XLA_FLAGS"] += " --xla_backend_optimization_level=0"
    import jax, jax.numpy as jnp, numpy as np
    from clip2point_jax.core import layer_stack, parallel, rules
    from clip2point_jax.training import losses
    from clip2point_jax.core.config_args import load_sibling
    from clip2point_jax.models import clip as clip_lib
    from clip2point_jax.training import pretrain
    from tests.training.test_losses import reference_total

    assert jax.device_count() == 8
    config = load_sibling("configs/x.py", "pretrain").get_config("tiny")
    with config.unlocked():
      config.render.image_size = 32
    vision = clip_lib.CLIPVisionConfig(image_size=32, patch_size=16, hidden_size=32,
                                       intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    encoder = clip_lib.CLIPVisionEncoder(clip_lib.CLIPConfig(vision=vision, projection_dim=16))
    encoder_params = jax.device_get(encoder.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))["params"])
    rng = np.random.default_rng(0)
    b, m = 16, 20
    batch = {"points": rng.normal(size=(b, 64, 3)).astype(np.float32),
             "view": rng.integers(0, 10, b).astype(np.int32),
             "row": rng.permutation(m)[:b].astype(np.int32)}
    cache = rng.normal(size=(m, 10, 16)).astype(np.float16)

    def setup(devices, stack_layers=False):
      mesh = parallel.make_mesh(devices)
      config.optim.stack_layers = stack_layers
      params = {"depth_encoder": encoder_params, "w": np.float32(1.0)}
      trainable, frozen = rules.split(params, config.optim.trainable)
      state, tx, schedule = pretrain.initial_state(config, trainable, 50)
      state["step"] = np.int32(3)
      layers = state["params"]["depth_encoder"]["vision_model"]["encoder"]
      assert list(layers) == (["layers"] if stack_layers else ["layers_0", "layers_1"])
      shardings = pretrain.state_shardings(mesh, state, ())
      state = jax.device_put(state, shardings)
      return mesh, state, frozen, tx, schedule, shardings

    def one_step(devices, stack_layers=False):
      mesh, state, frozen, tx, schedule, shardings = setup(devices, stack_layers)
      step = pretrain.jitted_train_step(config, encoder, tx, schedule, live=False, period=50, mesh=mesh,
                                        state=state, frozen=frozen, shardings=shardings,
                                        frozen_shardings={})
      batch_on_mesh = parallel.global_batch(mesh, batch)
      assert len(batch_on_mesh["points"].sharding.device_set) == len(devices)
      new_state, metrics = step(state, frozen, batch_on_mesh,
                                jax.device_put(cache, parallel.replicated(mesh)))
      return layer_stack.unstack(jax.device_get(new_state)), jax.device_get(metrics)

    one, one_metrics = one_step(jax.devices()[:1])
    eight, eight_metrics = one_step(jax.devices())
    # LAMB over stacked layers (config.optim.stack_layers) makes the same update.
    stacked, stacked_metrics = one_step(jax.devices(), stack_layers=True)
    for other, other_metrics in ((eight, eight_metrics), (stacked, stacked_metrics)):
      for key in ("loss", "l_intra", "l_cross", "grad_norm"):
        np.testing.assert_allclose(other_metrics[key], one_metrics[key], rtol=2e-5, err_msg=key)
      jax.tree.map(lambda a, c: np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-6),
                   other["params"], one["params"])
    assert not np.allclose(one["params"]["w"], 1.0)

    # Grouped negatives on features sharded over the 8 devices: the mean of per-group losses.
    mesh = parallel.make_mesh()
    f1, f2, fi = (rng.normal(size=(b, 16)).astype(np.float32) for _ in range(3))
    grouped = jax.jit(lambda *f: losses.pretrain_loss(*f, jnp.float32(1.3), temperature=0.07,
                                                      negatives_group=4))
    total, terms = grouped(*parallel.global_batch(mesh, (f1, f2, fi)))
    want = np.mean([reference_total(f1[g:g + 4], f2[g:g + 4], fi[g:g + 4], 1.3, 0.07)
                    for g in range(0, b, 4)], axis=0)
    np.testing.assert_allclose([float(total), float(terms["l_intra"]), float(terms["l_cross"])], want,
                               rtol=1e-5)
    assert abs(float(total) - reference_total(f1, f2, fi, 1.3, 0.07)[0]) > 1e-3
    print("ok")
  """)
