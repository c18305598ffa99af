"""RGB views of meshes for datasets: batched through the jitted mesh renderer, PNG-coded.

Datasets store views as shapenet55 stores CLIP2Point's renderings: the PNG
files' bytes, one per view, decoded by `shapenet55.decode_renderings`.
"""

import concurrent.futures
import functools
import io
import os
from typing import Iterator, Sequence

import jax
import numpy as np
from PIL import Image

from renderers import cameras
from renderers import mesh as mesh_renderer
from renderers import mesh_batch


def render_views(meshes: Sequence[mesh_batch.Mesh], *, views=cameras.VIEWS_PRETRAIN,
                 image_size: int = mesh_renderer.IMAGE_SIZE, batch_size: int = 8,
                 **render_options) -> Iterator[np.ndarray]:
  """uint8[V, H, W, 3] views of each mesh, in order, rendered `batch_size` at a time.

  All meshes are padded to the face count of the largest and every batch to
  `batch_size`, so the renderer compiles once. Meshes are drawn as given
  (normalise them first). `render_options` go to `mesh.render`.
  """
  if not meshes:
    return
  num_faces = mesh_batch.face_bucket(max(m.num_faces for m in meshes))
  for start in range(0, len(meshes), batch_size):
    chunk = meshes[start:start + batch_size]
    batch = mesh_batch.pack(chunk, num_faces=num_faces, batch_size=batch_size)
    rgb8 = np.asarray(mesh_renderer.render(jax.device_put(batch), views, image_size=image_size,
                                           **render_options).rgb8)
    yield from rgb8[:len(chunk)]


def png_bytes(image: np.ndarray) -> bytes:
  """One uint8[H, W, 3] image as PNG file bytes."""
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format="PNG")
  return buffer.getvalue()


@functools.lru_cache(maxsize=1)
def _encoders() -> concurrent.futures.ThreadPoolExecutor:
  # Pillow's zlib compression releases the GIL, so threads scale with the cores.
  return concurrent.futures.ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1),
                                               thread_name_prefix="png")


def png_bytes_many(images: Sequence[np.ndarray]) -> list[bytes]:
  """`png_bytes` of each image, in order, encoded on several threads.

  A shape's ten 224 px views take ~45 ms to encode on one core: the
  slowest part of preparing the built-in shapes with views.
  """
  return list(_encoders().map(png_bytes, images))
