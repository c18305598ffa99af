"""The PyTorch baseline of zero-shot: transformers' CLIP image tower on pre-rendered depth images.

  PYTHONPATH=. python bench/bench_torch_zeroshot.py --batch 1024 --compile max-autotune-no-cudagraphs

What CLIP2Point's PyTorch code would run per batch of clouds, minus its
rasteriser (PyTorch3D is not installed on the device image): the 6 views of
each cloud as 224x224 RGB images through `CLIPVisionModelWithProjection` in
bfloat16 with SDPA attention. It gets the images for free, so it is an upper
bound on the original pipeline's speed. Rows are in clouds/s, comparable
with `bench_zeroshot.py`. `--matmul` first prints cuBLAS's bf16 rate on an
8192^3 product through torch, the ideal issue #26 measures against.
"""

import argparse
import time

import torch
import transformers

from bench.lib import timing

VIEWS = 6


def matmul_tflops(device, size: int, repeats: int) -> float:
  """torch's (cuBLAS's) bf16 rate on a size^3 product: median of `repeats` waited calls after as many warm-ups."""
  a, b = (torch.randn(size, size, device=device, dtype=torch.bfloat16) for _ in range(2))

  def product():
    out = a @ b
    if device.type == "cuda":
      torch.cuda.synchronize()
    return out

  return 2 * size**3 / timing.median_seconds(product, max(repeats, 30), warmup=max(repeats, 30)) / 1e12


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, nargs="+", default=[1024], help="clouds per batch")
  parser.add_argument("--compile", default="", help="a torch.compile mode, e.g. max-autotune-no-cudagraphs")
  parser.add_argument("--repeats", type=int, default=10)
  parser.add_argument("--tiny", action="store_true")
  parser.add_argument("--matmul", action="store_true", help="first time torch's bf16 8192^3 matmul")
  args = parser.parse_args()
  device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
  if args.matmul:
    size = 1024 if args.tiny else 8192
    print(f"torch bf16 matmul {size}^3: {matmul_tflops(device, size, args.repeats):.1f} TFLOP/s "
          "(median, waited)", flush=True)
  config = (transformers.CLIPVisionConfig(hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                                          num_attention_heads=4, projection_dim=32)
            if args.tiny else transformers.CLIPVisionConfig())  # ViT-B/32
  config._attn_implementation = "sdpa"  # pylint: disable=protected-access
  model = transformers.CLIPVisionModelWithProjection(config)
  model = model.to(device=device, dtype=torch.bfloat16).eval()
  forward = model
  if args.compile:
    start = time.perf_counter()
    forward = torch.compile(model, mode=args.compile)
  name = f"torch bf16 sdpa {'compiled ' + args.compile if args.compile else 'eager'}"
  print(f"{name} | torch {torch.__version__} | transformers {transformers.__version__} | "
        f"{torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}", flush=True)
  for batch in args.batch:
    images = torch.rand(batch * VIEWS, 3, 224, 224, device=device, dtype=torch.bfloat16)

    def step():
      with torch.no_grad():
        out = forward(pixel_values=images).image_embeds
      if device.type == "cuda":
        torch.cuda.synchronize()
      return out

    if args.compile:
      start = time.perf_counter()
      step()
      print(f"  compiled batch {batch} in {time.perf_counter() - start:.1f} s", flush=True)
    seconds = timing.median_seconds(step, args.repeats, warmup=3)

    def launch(_):
      with torch.no_grad():
        return forward(pixel_values=images).image_embeds

    wait = lambda _: torch.cuda.synchronize() if device.type == "cuda" else None
    back_to_back = timing.back_to_back_seconds(launch, wait, args.repeats)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    print(f"{name:<48} batch {batch:>5}  {1e3 * seconds:9.2f} ms  {batch / seconds:9.1f} clouds/s"
          f"  back to back {1e3 * back_to_back:9.2f} ms  {batch / back_to_back:9.1f} clouds/s"
          f"  peak {peak:.2f} GiB", flush=True)


if __name__ == "__main__":
  main()
