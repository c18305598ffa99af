"""The built-in shapes' RGB views: stored like shapenet55's renderings, aligned with the clouds."""

import numpy as np
from scipy import ndimage

from clip2point_jax.data import registry, rendered_views
from clip2point_jax.data.builders import shapenet55
from renderers import cameras
from renderers import points as projector


def test_primitives_store_ten_views_aligned_with_their_clouds(tmp_path):
  data_dir = str(tmp_path)
  registry.prepare("primitives", data_dir, num_per_class_train=1, num_per_class_test=1,
                   num_points_stored=2048)
  source, names = registry.load_split("primitives", "test", data_dir)
  assert len(source) == len(names) == 8
  for i in range(len(source)):
    example = source[i]
    assert example["has_images"] and len(example["images"]) == 10
    images = shapenet55.decode_renderings(example["images"])
    assert images.shape == (10, 224, 224, 3) and images.dtype == np.uint8
    mesh_mask = ~(images == 255).all(-1)
    # A colour of its own: shaded pixels are not grey.
    shaded = images[mesh_mask].astype(int)
    assert np.mean(shaded.max(-1) - shaded.min(-1)) > 15
    # Depth view k of the cloud, in the frame the pipeline gives it, covers
    # the same pixels as RGB view k, up to the point radius and the cloud's noise.
    points = projector.normalize_points(example["points"][None])
    depth = np.asarray(projector.render_depth(points, cameras.VIEWS_PRETRAIN))[0]
    cloud_mask = depth < 1.0
    reach = 5  # pixels: radius 0.02 plus noise of 0.01 (3 sigma), at 112 pixels per unit
    grow = lambda m: ndimage.binary_dilation(m, iterations=reach)
    for k in range(10):
      # 2048 points leave gaps between their discs: close them before comparing.
      closed = ndimage.binary_closing(cloud_mask[k], iterations=4)
      filled = ndimage.binary_fill_holes(closed)
      assert np.mean(cloud_mask[k] & ~grow(mesh_mask[k])) < 1e-3, (example["id"], k)
      assert np.mean(mesh_mask[k] & ~grow(filled)) < 1e-3, (example["id"], k)
      outline = ndimage.binary_fill_holes(mesh_mask[k])
      iou = (filled & outline).sum() / (filled | outline).sum()
      assert iou > 0.85, (example["id"], k, iou)  # discs reach 2 pixels past the rim


def test_primitives_without_images(tmp_path):
  registry.prepare("primitives", str(tmp_path), num_per_class_train=1, num_per_class_test=1,
                   num_points_stored=64, render_images=False)
  source, _ = registry.load_split("primitives", "train", str(tmp_path))
  assert not source[0]["has_images"] and len(source[0]["images"]) == 0
  assert registry.metadata("primitives", str(tmp_path))["options"]["render_images"] is False


def test_views_are_encoded_on_threads_in_order():
  images = list(np.random.default_rng(0).integers(0, 256, (12, 32, 32, 3), dtype=np.uint8))
  assert rendered_views.png_bytes_many(images) == [rendered_views.png_bytes(x) for x in images]
