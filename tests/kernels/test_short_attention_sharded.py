"""The Pallas kernels (attention, quick-GELU, layer norm) split over the devices that hold the batch."""

from tests.conftest import run_with_fake_devices


def test_pallas_attention_and_its_gradient_are_batch_parallel_on_8_devices():
  run_with_fake_devices("""
    import re
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from clip2point_jax.kernels import dispatch, fused_layer_norm, quick_gelu, short_attention
    from clip2point_jax.models import clip

    mesh = Mesh(np.asarray(jax.devices()), ("data",))
    rng = np.random.default_rng(0)
    q, k, v = (rng.normal(size=(16, 50, 2, 16)).astype(np.float32) for _ in range(3))
    sharded = [jax.device_put(t, NamedSharding(mesh, P("data"))) for t in (q, k, v)]
    loss = lambda attend: lambda q, k, v: jnp.sum(attend(q, k, v) * jnp.cos(q))
    for name, fn, reference in [
        ("forward", short_attention.pallas_attention, short_attention.xla_attention),
        ("gradient", jax.grad(loss(short_attention.pallas_attention), argnums=(0, 1, 2)),
         jax.grad(loss(short_attention.xla_attention), argnums=(0, 1, 2)))]:
      hlo = jax.jit(fn).lower(*sharded).compile().as_text()
      collectives = re.findall(r"all-gather|all-reduce|all-to-all|collective-permute", hlo)
      assert not collectives, (name, sorted(set(collectives)))
      # Each device's program holds its own 2 sequences, not all 16.
      assert "f32[2,50,2,16]" in hlo.replace(" ", ""), name
      out = jax.jit(fn)(*sharded)
      for got, want in zip(jax.tree.leaves(out), jax.tree.leaves(jax.jit(reference)(q, k, v))):
        assert got.sharding.spec[0] == "data", (name, got.sharding)
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=2e-5, err_msg=name)

    # Heads sharded too (batch over 4 devices, heads over 2): each device its own 4 x 1.
    mesh2 = Mesh(np.asarray(jax.devices()).reshape(4, 2), ("data", "model"))
    split = NamedSharding(mesh2, P("data", None, "model", None))
    by_head = [jax.device_put(t, split) for t in (q, k, v)]
    grad = jax.grad(loss(short_attention.pallas_attention), argnums=(0, 1, 2))
    for name, fn in (("forward", short_attention.pallas_attention), ("gradient", grad)):
      hlo = jax.jit(fn).lower(*by_head).compile().as_text()
      assert not re.findall(r"all-gather|all-reduce|all-to-all|collective-permute", hlo), name
      assert "f32[4,50,1,16]" in hlo.replace(" ", ""), name
    out = jax.jit(short_attention.pallas_attention)(*by_head)
    assert out.sharding.spec[:3] == ("data", None, "model"), out.sharding
    np.testing.assert_allclose(np.asarray(out), np.asarray(short_attention.xla_attention(q, k, v)),
                               atol=2e-5)

    # quick-GELU and the layer norm too: each device runs them on its own sequences.
    x = rng.normal(size=(16, 50, 32)).astype(np.float32)
    scale, bias = rng.normal(size=(32,)).astype(np.float32), rng.normal(size=(32,)).astype(np.float32)
    for name, fn, reference in [
        ("quick-GELU", quick_gelu.quick_gelu_kernel, quick_gelu.quick_gelu),
        ("layer norm", lambda x: fused_layer_norm.layer_norm(x, scale, bias, 1e-5, jnp.float32),
         lambda x: fused_layer_norm.flax_layer_norm(x, scale, bias, 1e-5, jnp.float32))]:
      x_sharded = jax.device_put(x, NamedSharding(mesh, P("data")))
      hlo = jax.jit(fn).lower(x_sharded).compile().as_text()
      assert not re.findall(r"all-gather|all-reduce|all-to-all|collective-permute", hlo), name
      assert "f32[2,50,32]" in hlo.replace(" ", ""), name
      out = jax.jit(fn)(x_sharded)
      assert out.sharding.spec[0] == "data", name
      np.testing.assert_allclose(np.asarray(out), reference(x), rtol=1e-4, atol=1e-4, err_msg=name)

    # The whole image tower stays batch-parallel with the kernels inside.
    config = clip.CLIPVisionConfig(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64,
                                   num_hidden_layers=2, num_attention_heads=2)
    tower = clip.CLIPVisionTransformer(config, kernels=dispatch.resolve("pallas"))
    images = rng.normal(size=(16, 32, 32, 3)).astype(np.float32)
    params = tower.init(jax.random.key(0), images[:1])
    encode = jax.jit(lambda p, x: tower.apply(p, x))
    hlo = encode.lower(params, jax.device_put(images, NamedSharding(mesh, P("data")))).compile().as_text()
    assert not re.findall(r"all-gather|all-reduce|all-to-all|collective-permute", hlo)
  """)
