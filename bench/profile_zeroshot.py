"""Where the zero-shot step spends its GPU time: a profile summarised on the device.

  python bench/profile_zeroshot.py --variant depth-cudnn --batch 1024

Traces a few calls of the jitted points -> logits function with
`jax.profiler`, reads the Perfetto trace it writes and prints the GPU
kernels that take the most time, each with the HLO ops fused into it (from
the compiled module's text), so the table says which part of the model a
kernel is. Nothing large needs to leave the device machine.
"""

import argparse
import collections
import glob
import gzip
import json
import os
import re
import tempfile

from clip2point_jax import xla_defaults

xla_defaults.apply()  # Before jax starts.

import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp
import numpy as np

import bench_common
import bench_zeroshot as bz
from clip2point_jax.models import zeroshot
from renderers import cameras


def fused_ops(hlo_text: str) -> dict[str, str]:
  """Instruction name -> a short list of the ops inside it (for fusions)."""
  computations, current = {}, None
  for line in hlo_text.splitlines():
    header = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{$", line.strip())
    if header:
      current = header.group(1)
      computations[current] = []
    elif current and "=" in line:
      op = re.search(r"= \S+ (\w[\w\-]*)\(", line)
      if op:
        computations[current].append(op.group(1))
  summary = {}
  for line in hlo_text.splitlines():
    call = re.match(r"^\s*%?([\w.\-]+) = .*calls=%?([\w.\-]+)", line)
    if call:
      ops = collections.Counter(o for o in computations.get(call.group(2), [])
                                if o not in ("parameter", "constant", "bitcast", "get-tuple-element"))
      summary[call.group(1)] = " ".join(f"{k}x{v}" if v > 1 else k for k, v in ops.most_common(6))
  return summary


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--variant", default="depth-cudnn", choices=bz.VARIANTS)
  parser.add_argument("--batch", type=int, default=1024)
  parser.add_argument("--points", type=int, default=1024)
  parser.add_argument("--calls", type=int, default=3)
  parser.add_argument("--top", type=int, default=25)
  parser.add_argument("--tiny", action="store_true")
  args = parser.parse_args()
  config = bz._config(args.tiny)  # pylint: disable=protected-access
  encode, params = bz._encoder(config, jnp.bfloat16, args.variant)  # pylint: disable=protected-access
  text = np.random.default_rng(0).normal(size=(bz.NUM_CLASSES, config.projection_dim)).astype(np.float32)
  classify = zeroshot.make_classifier(encode, views=cameras.VIEWS_ZERO_SHOT)
  clouds = bench_common.clouds(args.batch, args.points, 0)
  hlo = classify.lower(params, text, clouds).compile().as_text()
  names = fused_ops(hlo)
  for _ in range(3):
    jax.block_until_ready(classify(params, text, clouds))
  folder = tempfile.mkdtemp()
  with jax.profiler.trace(folder, create_perfetto_trace=True):
    for _ in range(args.calls):
      jax.block_until_ready(classify(params, text, clouds))
  trace_path = glob.glob(os.path.join(folder, "**", "*perfetto_trace.json.gz"), recursive=True)[0]
  with gzip.open(trace_path) as f:
    trace = json.load(f)
  events = trace["traceEvents"] if isinstance(trace, dict) else trace
  processes = {e["pid"]: e["args"]["name"] for e in events
               if e.get("ph") == "M" and e.get("name") == "process_name"}
  threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in events
             if e.get("ph") == "M" and e.get("name") == "thread_name"}
  gpu = {pid for pid, name in processes.items() if "GPU" in name}
  # GPU lines: "Stream ..." hold CUDA kernels; "XLA Ops" the same time by HLO op name.
  line_names = sorted({threads.get((e.get("pid"), e.get("tid")), "") for e in events
                       if e.get("pid") in gpu and e.get("ph") == "X"})
  print("GPU trace lines:", line_names)
  wanted = "XLA Ops" if "XLA Ops" in line_names else None
  totals, counts, kernels = collections.Counter(), collections.Counter(), 0.0
  for e in events:
    if e.get("ph") != "X" or e.get("pid") not in gpu or "dur" not in e:
      continue
    line = threads.get((e["pid"], e["tid"]), "")
    if line.startswith("Stream"):
      kernels += e["dur"]
    if (wanted and line == wanted) or (not wanted and line.startswith("Stream")):
      totals[e["name"]] += e["dur"]
      counts[e["name"]] += 1
  print(f"CUDA kernels: {kernels / args.calls / 1e3:.2f} ms per call")
  busy = sum(totals.values()) / args.calls
  print(f"{args.variant} batch {args.batch}: GPU busy {busy / 1e3:.2f} ms per call "
        f"({len(totals)} distinct kernels)")
  print(f"{'ms/call':>8} {'share':>6} {'n/call':>6}  kernel: fused ops")
  for name, total in totals.most_common(args.top):
    short = name if len(name) < 60 else name[:57] + "..."
    hlo_name = re.sub(r"_(\d+)$", r".\1", name)  # Trace names use _N where HLO has .N
    print(f"{total / args.calls / 1e3:8.3f} {100 * total / args.calls / busy:5.1f}% "
          f"{counts[name] / args.calls:6.1f}  {short}: {names.get(hlo_name, names.get(name, ''))}")


if __name__ == "__main__":
  main()
