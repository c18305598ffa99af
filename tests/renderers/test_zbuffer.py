"""The scatter-free z-buffers (render.zbuffer=sort, dense) give the scatter's images bit for bit."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import export

from clip2point_jax.errors import UserError
from clip2point_jax.projection import encode
from clip2point_jax.projection import settings as render_settings
from clip2point_jax.validation import fields
from renderers import cameras
from renderers import points as pj
from renderers import zbuffer
from renderers.errors import InputError
from tests.conftest import task_config

FREE = ("sort", "dense", "auto")  # compared against "scatter"


@functools.lru_cache(maxsize=None)
def _rasterizer(mode, image_size, radius):
  return jax.jit(functools.partial(pj.rasterize_zbuffer, image_size=image_size, radius=radius,
                                   zbuffer=mode))


def _zbuffers(ndc, mask, image_size, radius):
  """{mode: float32[B, V, H, W]} for every mode, from ndc float32[B, V, N, 3]."""
  ndc, mask = jnp.asarray(ndc, jnp.float32), jnp.asarray(mask, bool)
  return {m: np.asarray(_rasterizer(m, image_size, radius)(ndc, mask)) for m in pj.ZBUFFER_MODES}


def _assert_all_equal(out):
  for mode in FREE:
    assert out[mode].dtype == np.float32
    assert np.array_equal(out[mode], out["scatter"]), (
        f"{mode}: {np.sum(out[mode] != out['scatter'])} pixels differ from the scatter's")


def _random_ndc(rng, b, v, n, depth_levels=None):
  """float32[B, V, N, 3]: x, y past the image edges, some z behind the camera."""
  xy = rng.uniform(-1.15, 1.15, (b, v, n, 2))
  z = rng.uniform(-0.3, 2.0, (b, v, n, 1))
  if depth_levels:  # Few distinct depths: ties everywhere.
    z = rng.integers(0, depth_levels, (b, v, n, 1)) / depth_levels
  return np.concatenate([xy, z], -1).astype(np.float32)


@pytest.mark.parametrize("b,v,n,size,radius", [
    (2, 3, 150, 16, 0.12),   # K = 3
    (3, 2, 400, 32, 0.05),   # K = 3, many overlaps
    (2, 2, 60, 20, 0.3),     # K = 8; 20 rows are not a multiple of dense's 8 per step
    (1, 1, 40, 32, 0.45),    # K = 16: wide discs, most of the image per point
])
def test_random_clouds_equal_the_scatter(b, v, n, size, radius):
  rng = np.random.default_rng(size * 1000 + n)
  ndc = _random_ndc(rng, b, v, n)
  mask = rng.random((b, n)) < 0.85
  out = _zbuffers(ndc, mask, size, radius)
  covered = np.isfinite(out["scatter"])
  assert 0.05 < covered.mean() < 0.98  # Both covered and empty pixels are compared.
  _assert_all_equal(out)


def test_ties_and_duplicates_keep_the_shared_depth():
  rng = np.random.default_rng(7)
  ndc = _random_ndc(rng, 2, 2, 200, depth_levels=3)
  ndc[:, :, 100:] = ndc[:, :, :100]  # Every point twice, at the same depth.
  out = _zbuffers(ndc, np.ones((2, 200), bool), 16, 0.15)
  _assert_all_equal(out)
  # Two coinciding points at one depth give that depth, not their sum or inf.
  pair = np.array([[[[0.1, -0.2, 0.75], [0.1, -0.2, 0.75], [0.1, -0.2, 1.5]]]], np.float32)
  alone = _zbuffers(pair, np.ones((1, 3), bool), 16, 0.15)
  _assert_all_equal(alone)
  assert set(np.unique(alone["sort"])) == {np.float32(0.75), np.inf}


def _pixel_ndc(index, size):
  return np.float32(cameras.pixel_ndc(np.int32(index), size))


def test_points_exactly_on_the_radius_are_excluded():
  # At 16 pixels every centre is a multiple of 1/16, so these distances are
  # exact in float32: dx = 3/16, dy = 4/16 puts the pixel at exactly r = 5/16.
  size, radius = 16, 0.3125
  x = _pixel_ndc(9, size) - np.float32(3 / 16)
  y = _pixel_ndc(6, size) - np.float32(4 / 16)
  dx, dy = _pixel_ndc(9, size) - x, _pixel_ndc(6, size) - y
  r2 = np.float32(radius) * np.float32(radius)
  assert dy * dy + dx * dx == r2  # On the boundary in float32.
  ndc = np.array([[[[x, y, 0.5]]]], np.float32)
  out = _zbuffers(ndc, np.ones((1, 1), bool), size, radius)
  _assert_all_equal(out)
  image = out["dense"][0, 0]
  assert image[6, 9] == np.inf  # dist2 < r^2 is false on the boundary.
  # One pixel closer along either axis is inside (the point sits at row 8, column 10.5).
  assert image[7, 9] == 0.5 and image[6, 10] == 0.5
  assert np.isfinite(image).sum() > 10


def _moved_ulps(values, steps):
  """float32 `values`, each moved `steps` (int, signed) ulps."""
  values, steps = values.copy(), steps.copy()
  while (steps != 0).any():
    move = steps != 0
    values[move] = np.nextafter(values[move], np.where(steps[move] > 0, np.inf, -np.inf).astype(np.float32))
    steps -= np.sign(steps)
  return values


def test_points_hugging_the_radius_in_float32():
  # One point per cloud, a few ulps either side of the radius from one pixel
  # centre (r^2 not exact here): float32 rounding decides that pixel.
  size, radius, count = 32, 0.1, 96
  rng = np.random.default_rng(3)
  cols, rows = rng.integers(3, 29, count), rng.integers(3, 29, count)
  angles = rng.uniform(0, 2 * np.pi, count)
  x = (_pixel_ndc(cols, size) - np.float32(radius) * np.cos(angles)).astype(np.float32)
  y = (_pixel_ndc(rows, size) - np.float32(radius) * np.sin(angles)).astype(np.float32)
  x, y = (_moved_ulps(c, rng.integers(-3, 4, count)) for c in (x, y))
  ndc = np.stack([x, y, rng.uniform(0.2, 1.8, count)], -1).astype(np.float32)[:, None, None]
  out = _zbuffers(ndc, np.ones((count, 1), bool), size, radius)
  _assert_all_equal(out)
  hit = np.isfinite(out["scatter"][np.arange(count), 0, rows, cols])
  assert 0 < hit.sum() < count  # The boundary pixel falls both ways.


def test_skipped_and_edge_points():
  size, radius = 24, 0.1
  rng = np.random.default_rng(11)
  ndc = _random_ndc(rng, 2, 2, 80)
  ndc[0, :, 0] = [np.nan, 0.0, 0.5]      # NaN: skipped
  ndc[0, :, 1] = [0.0, np.inf, 0.5]      # inf: skipped
  ndc[0, :, 2] = [0.2, 0.2, -0.01]       # behind the camera: skipped
  ndc[0, :, 3] = [0.2, 0.2, 0.0]         # on the camera plane: drawn
  ndc[1, :, 4:8] = [[-1.0, -1.0, 0.3], [1.0, 1.0, 0.3], [-1.05, 0.0, 0.3], [0.0, 1.09, 0.3]]  # corners, edges
  ndc[1, :, 8] = [0.6, -0.6, 0.01]       # masked, in front of everything
  mask = np.ones((2, 80), bool)
  mask[1, 8] = False
  out = _zbuffers(ndc, mask, size, radius)
  _assert_all_equal(out)
  assert not np.isnan(out["dense"]).any() and (out["sort"] >= 0).all()
  assert np.float32(0.01) not in out["sort"][1] and np.float32(0.0) in out["sort"][0]
  corners = out["dense"][1, :, [0, -1], [0, -1]]
  assert np.isfinite(corners).all()  # Points on the image's corners cover them.


def test_empty_clouds_render_nothing():
  out = _zbuffers(np.zeros((2, 3, 0, 3), np.float32), np.ones((2, 0), bool), 16, 0.1)
  _assert_all_equal(out)
  assert (out["dense"] == np.inf).all()


@pytest.mark.parametrize("mode", ["sort", "dense"])
def test_each_cloud_renders_as_it_does_alone(mode):
  rng = np.random.default_rng(5)
  clouds = np.asarray(pj.normalize_points(rng.normal(size=(3, 120, 3)).astype(np.float32)))
  views = cameras.VIEWS_ZERO_SHOT[:2]
  together = np.asarray(pj.render_depth(clouds, views, image_size=20, zbuffer=mode))
  for b in range(3):
    alone = np.asarray(pj.render_depth(clouds[b:b + 1], views, image_size=20, zbuffer=mode))
    np.testing.assert_array_equal(together[b], alone[0])
  assert (together < 1.0).any() and (together == 1.0).any()


@pytest.mark.parametrize("rows", [1, 5, 64])
def test_dense_rows_per_step_change_nothing(rows):
  rng = np.random.default_rng(rows)
  ndc = jnp.asarray(_random_ndc(rng, 1, 2, 90))
  mask = jnp.ones((1, 90), bool)
  fp = pj.point_footprints(ndc, image_size=20, reach=0.15)
  covered = fp.inside & (fp.dist2 < np.float32(0.15) * np.float32(0.15)) & (ndc[..., 2] >= 0)[..., None, None]
  dense = zbuffer.dense_min(covered, fp.rows[..., 0], fp.cols[..., 0], ndc[..., 2], image_size=20,
                            rows_per_step=rows)
  scatter = pj.rasterize_zbuffer(ndc, mask, image_size=20, radius=0.15, zbuffer="scatter")
  np.testing.assert_array_equal(np.asarray(dense), np.asarray(scatter))


def test_unknown_zbuffer_is_an_input_error():
  with pytest.raises(InputError, match="zbuffer"):
    pj.render_depth(np.ones((1, 4, 3), np.float32), cameras.VIEWS_ZERO_SHOT, zbuffer="gather")


def test_render_zbuffer_reaches_the_projector_through_the_settings(monkeypatch):
  config = task_config("zeroshot", "tiny")
  config.render.zbuffer = "sort"
  fields.check_fields(config)
  settings = render_settings.from_config(config.render, config.views)
  assert settings.projector_kwargs()["zbuffer"] == "sort"
  calls = []
  real = zbuffer.sort_min
  monkeypatch.setattr(zbuffer, "sort_min", lambda *a: calls.append(a) or real(*a))
  # An image size no other test renders at, so the jitted projector is traced anew.
  settings = dataclasses.replace(settings, image_size=19)
  points = np.random.default_rng(0).normal(size=(2, 64, 3)).astype(np.float32)
  images = encode.depth_maps(points, settings)
  assert len(calls) == 1 and images.shape == (2, len(settings.views), 19, 19)
  # The identity caches record leaves it out: every mode gives the same images.
  assert "zbuffer" not in render_settings.identity(config.render)
  config.render.zbuffer = "gather"
  with pytest.raises(UserError, match="render.zbuffer"):
    fields.check_fields(config)
  with pytest.raises(UserError, match="render.zbuffer"):
    render_settings.from_config(config.render, config.views)


def _exported_text(fn, platform, *args):
  return export.export(jax.jit(fn), platforms=(platform,))(*args).mlir_module()


_NDC = jax.ShapeDtypeStruct((2, 3, 64, 3), jnp.float32)
_MASK = jax.ShapeDtypeStruct((2, 64), jnp.bool_)


@pytest.mark.parametrize("mode", pj.ZBUFFER_MODES)
def test_tpu_export_of_the_rasterizer_has_a_scatter_only_in_scatter_mode(mode):
  text = _exported_text(functools.partial(pj.rasterize_zbuffer, image_size=16, radius=0.1, zbuffer=mode),
                        "tpu", _NDC, _MASK)
  assert ("stablehlo.scatter" in text) == (mode == "scatter"), mode


def test_auto_scatters_when_exported_for_gpus_and_cpus():
  rasterize = functools.partial(pj.rasterize_zbuffer, image_size=16, radius=0.1, zbuffer="auto")
  for platform in ("cuda", "cpu"):
    text = _exported_text(rasterize, platform, _NDC, _MASK)
    assert "stablehlo.scatter" in text and "stablehlo.while" not in text, platform


@pytest.mark.parametrize("mode", FREE)
def test_tpu_export_of_render_depth_has_no_scatter(mode):
  views = cameras.views_array(cameras.VIEWS_ZERO_SHOT)
  render = lambda p: pj.render_depth(p, views, image_size=16, zbuffer=mode)
  text = _exported_text(render, "tpu", jax.ShapeDtypeStruct((2, 64, 3), jnp.float32))
  assert "stablehlo.scatter" not in text, mode


def test_tpu_export_of_render_depth_in_scatter_mode_has_the_zbuffers_scatter():
  views = cameras.views_array(cameras.VIEWS_ZERO_SHOT)
  text = {m: _exported_text(lambda p, m=m: pj.render_depth(p, views, image_size=16, zbuffer=m), "tpu",
                            jax.ShapeDtypeStruct((2, 64, 3), jnp.float32)) for m in ("scatter", "dense")}
  assert text["scatter"].count("stablehlo.scatter") > text["dense"].count("stablehlo.scatter")
