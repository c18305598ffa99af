"""Image formation in JAX: cameras, the point-cloud depth projector, the mesh renderer.

  cameras.py  PyTorch3D's look_at views, orthographic and perspective cameras
  points.py   point clouds -> CLIP2Point depth maps (hard and soft)

The package stands alone: it never imports `clip2point_jax`.
"""
