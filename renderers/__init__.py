"""Image formation in JAX: cameras, the point-cloud depth projector, the mesh renderer.

  cameras.py     PyTorch3D's look_at views, orthographic and perspective cameras
  points.py      point clouds -> CLIP2Point depth maps (hard and soft)
  mesh.py        triangle meshes -> RGB, depth, silhouette, face index (PyTorch3D's
                 hard Phong pipeline)
  mesh_batch.py  host-side meshes: checks, normalisation, normals, packing
  mesh_io.py     mesh files (ShapeNetCore v2 OBJ+MTL+textures, PLY, ...) via trimesh

The package stands alone: it never imports `clip2point_jax`.
"""
