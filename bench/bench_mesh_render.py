"""Mesh renderer throughput on ShapeNet-sized meshes, and the projected time for ShapeNet.

  PYTHONPATH=. python bench/bench_mesh_render.py                  # 2k, 20k, 200k faces, 224x224, 10 views
  PYTHONPATH=. python bench/bench_mesh_render.py --tiny           # a CPU-sized setting
  PYTHONPATH=. python bench/bench_mesh_render.py --tiers 1,2,4,8 --budget 65536   # try another work split

Each mesh is a textured cluster of UV spheres (several overlapping parts, so
pixels see several surfaces, as in ShapeNet models) with `faces` triangles,
normalised as the render task normalises meshes, with a 1024x1024 texture
atlas. Batches have as many meshes as the render task would put together
(`--faces_per_batch // padded faces`, at most `--max_batch`). Timings are the
median of `--repeats` calls of the jitted renderer, after compiling and
warming up, with `block_until_ready`, and include copying the batch to the
device and the uint8 images back. The table also shows the host's side per
mesh (reading the OBJ with textures, packing it, encoding 10 PNGs), which the
render task spreads over `load_workers` processes and `write_workers` threads,
and the projected wall time for ShapeNetCore's 52,460 models.
"""

import argparse
import io
import os
import tempfile
import time

import jax
import numpy as np
from PIL import Image
import trimesh

from bench.lib import device as device_lib
from bench.lib import timing
from renderers import cameras
from renderers import mesh as mesh_renderer
from renderers import mesh_batch
from renderers import mesh_io

SHAPENET_MODELS = 52460
TINY = dict(faces=(500, 2000), image_size=64, repeats=2, faces_per_batch=1 << 13, max_batch=8)


def clutter_mesh(num_faces: int, seed: int = 0) -> trimesh.Trimesh:
  """About `num_faces` triangles: four overlapping UV spheres with UVs."""
  rng = np.random.default_rng(seed)
  parts = []
  per_part = max(num_faces // 4, 8)
  # trimesh's UV sphere with count [a, a] has 4 a (a - 2) faces.
  side = max(3, int(round(1 + np.sqrt(1 + per_part / 4))))
  for _ in range(4):
    sphere = trimesh.creation.uv_sphere(radius=1.0, count=[side, side])
    vertices = np.asarray(sphere.vertices) * rng.uniform(0.2, 0.6, 3) + rng.uniform(-0.5, 0.5, 3)
    uv = np.stack([np.arctan2(vertices[:, 0], vertices[:, 2]) / (2 * np.pi) + 0.5,
                   vertices[:, 1] * 0.5 + 0.5], -1)
    parts.append(trimesh.Trimesh(vertices, sphere.faces, process=False,
                                 visual=trimesh.visual.TextureVisuals(uv=uv)))
  return trimesh.util.concatenate(parts)


def write_obj(folder: str, mesh: trimesh.Trimesh, seed: int = 0) -> str:
  """The mesh as ShapeNetCore v2 stores models: OBJ + MTL + ../images/texture0.jpg."""
  os.makedirs(os.path.join(folder, "models"), exist_ok=True)
  os.makedirs(os.path.join(folder, "images"), exist_ok=True)
  rng = np.random.default_rng(seed)
  texture = rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)
  Image.fromarray(texture).save(os.path.join(folder, "images", "texture0.jpg"), quality=90)
  with open(os.path.join(folder, "models", "model_normalized.mtl"), "w") as f:
    f.write("newmtl skin\nKd 1 1 1\nmap_Kd ../images/texture0.jpg\n")
  uv = np.asarray(mesh.visual.uv)
  lines = ["mtllib model_normalized.mtl"]
  lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in np.asarray(mesh.vertices)]
  lines += [f"vt {u:.6f} {v:.6f}" for u, v in uv]
  lines.append("usemtl skin")
  lines += [f"f {a}/{a} {b}/{b} {c}/{c}" for a, b, c in np.asarray(mesh.faces) + 1]
  path = os.path.join(folder, "models", "model_normalized.obj")
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")
  return path


def _peak_gib() -> str:
  peak = device_lib.peak_gib()
  return f"{peak:.2f}" if peak == peak else "n/a"  # nan where the device reports none


def benchmark(args, num_faces: int, workdir: str) -> dict:
  views = cameras.views_array(cameras.VIEWS_PRETRAIN)
  path = write_obj(os.path.join(workdir, f"m{num_faces}"), clutter_mesh(num_faces))
  # Host side, per mesh: read + normalise + pack, and PNG-encode the views.
  start = time.perf_counter()
  mesh = mesh_batch.normalize(mesh_io.load_mesh(path))
  packed = mesh_batch.pack_mesh(mesh, atlas_size=args.atlas_size)
  load_s = time.perf_counter() - start
  bucket = packed.mask.shape[1]
  batch_size = int(np.clip(args.faces_per_batch // bucket, 1, args.max_batch))
  batch = mesh_batch.stack([packed] * batch_size)
  options = dict(image_size=args.image_size, tiers=args.tiers, budget=args.budget)
  if args.image_group is not None:
    options["image_group"] = args.image_group

  def step():
    out = mesh_renderer.render(jax.device_put(batch), views, **options)
    return np.asarray(out.rgb8)

  seconds = timing.median_seconds(step, args.repeats)
  images = step()
  start = time.perf_counter()
  for image in images[0]:
    Image.fromarray(image).save(io.BytesIO(), format="PNG")
  png_s = time.perf_counter() - start
  views_per_s = batch_size * len(views) / seconds
  return dict(faces=mesh.num_faces, bucket=bucket, batch=batch_size, ms=seconds * 1e3,
              views_per_s=views_per_s, peak_gb=_peak_gib(), load_s=load_s, png_s=png_s,
              hours=SHAPENET_MODELS * len(views) / views_per_s / 3600)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--tiny", action="store_true", help="small meshes and images, for CPUs")
  parser.add_argument("--faces", default="2000,20000,200000")
  parser.add_argument("--image_size", type=int, default=224)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--faces_per_batch", type=int, default=1 << 19)
  parser.add_argument("--max_batch", type=int, default=32)
  parser.add_argument("--atlas_size", type=int, default=1024)
  parser.add_argument("--tiers", default=",".join(map(str, mesh_renderer.TIERS)))
  parser.add_argument("--budget", type=int, default=mesh_renderer.BUDGET)
  parser.add_argument("--image_group", type=int, default=None,
                      help="images rasterised at a time (default: 8 on CPUs, all elsewhere)")
  parser.add_argument("--load_workers", type=int, default=8)
  args = parser.parse_args()
  faces = [int(f) for f in args.faces.split(",")]
  if args.tiny:
    faces = list(TINY["faces"])
    for key in ("image_size", "repeats", "faces_per_batch", "max_batch"):
      setattr(args, key, TINY[key])
  args.tiers = tuple(int(t) for t in args.tiers.split(","))
  print(f"device: {device_lib.describe()}; "
        f"{args.image_size}x{args.image_size}, 10 views, tiers {args.tiers}, budget {args.budget}")
  print("| faces | padded | meshes/batch | ms/batch | views/s | peak GB | host load+pack s/mesh "
        "| PNG s/10 views | 52,460 models: device h | host h with "
        f"{args.load_workers} workers |")
  print("|---|---|---|---|---|---|---|---|---|---|")
  with tempfile.TemporaryDirectory() as workdir:
    for n in faces:
      r = benchmark(args, n, workdir)
      host_h = SHAPENET_MODELS * (r["load_s"] + r["png_s"]) / args.load_workers / 3600
      print(f"| {r['faces']:,} | {r['bucket']:,} | {r['batch']} | {r['ms']:.1f} | "
            f"{r['views_per_s']:,.0f} | {r['peak_gb']} | {r['load_s']:.3f} | {r['png_s']:.3f} | "
            f"{r['hours']:.2f} | {host_h:.2f} |", flush=True)


if __name__ == "__main__":
  main()
