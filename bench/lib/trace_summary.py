"""Where a jitted program spends its GPU time: a `jax.profiler` trace, summarised.

Used by `profile_zeroshot.py`, `bench_pretrain.py --profile` and
`bench_scaling.py --profile`. The Perfetto trace is read on the machine that
ran it and only the table is printed, so nothing large leaves the device.
"""

import collections
import glob
import gzip
import json
import os
import re
import tempfile
import time
from typing import Callable

import jax


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


def _gpu_events(run_once: Callable[[], None], calls: int, finish: Callable[[], None] | None):
  """(GPU events, wall seconds of the traced calls)."""
  folder = tempfile.mkdtemp()
  with jax.profiler.trace(folder, create_perfetto_trace=True):
    start = time.perf_counter()
    for _ in range(calls):
      run_once()
    if finish:
      finish()
    wall = time.perf_counter() - start
  trace_path = glob.glob(os.path.join(folder, "**", "*perfetto_trace.json.gz"), recursive=True)[0]
  with gzip.open(trace_path) as f:
    trace = json.load(f)
  events = trace["traceEvents"] if isinstance(trace, dict) else trace
  processes = {e["pid"]: e["args"]["name"] for e in events
               if e.get("ph") == "M" and e.get("name") == "process_name"}
  threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in events
             if e.get("ph") == "M" and e.get("name") == "thread_name"}
  gpu = {pid for pid, name in processes.items() if "GPU" in name}
  return [(processes[e["pid"]], threads.get((e["pid"], e["tid"]), ""), e) for e in events
          if e.get("ph") == "X" and e.get("pid") in gpu and "dur" in e], wall


def summarize(run_once: Callable[[], None], hlo_text: str, *, calls: int = 3, top: int = 25,
              title: str = "", finish: Callable[[], None] | None = None) -> None:
  """Traces `calls` calls of `run_once` and prints the top GPU kernels.

  `run_once` blocks, or `finish` (called once after the calls, still traced)
  waits for the last call's result.

  Times are per call, on the first GPU of the trace; kernels are named by
  their HLO instruction with the ops fused into it, from `hlo_text` (the
  compiled module's text). Collectives (all-reduce, all-gather, ...) appear
  as their own rows.
  """
  events, wall = _gpu_events(run_once, calls, finish)
  first_gpu = min((p for p, _, _ in events), default="")
  line_names = sorted({line for p, line, _ in events if p == first_gpu})
  print(f"GPU trace lines of {first_gpu}: {line_names}")
  wanted = "XLA Ops" if "XLA Ops" in line_names else None
  names = fused_ops(hlo_text)
  totals, counts, kernels, launches = collections.Counter(), collections.Counter(), 0.0, 0
  for process, line, e in events:
    if process != first_gpu:
      continue
    if line.startswith("Stream"):
      kernels += e["dur"]
      launches += 1
    if (wanted and line == wanted) or (not wanted and line.startswith("Stream")):
      totals[e["name"]] += e["dur"]
      counts[e["name"]] += 1
  busy = sum(totals.values()) / calls
  print(f"{title}: wall {1e3 * wall / calls:.2f} ms per call (traced), CUDA kernels "
        f"{kernels / calls / 1e3:.2f} ms in {launches / calls:.0f} kernels per call; GPU busy "
        f"{busy / 1e3:.2f} ms per call ({len(totals)} distinct ops)")
  print(f"{'ms/call':>8} {'share':>6} {'n/call':>6}  op: fused ops")
  for name, total in totals.most_common(top):
    short = name if len(name) < 60 else name[:57] + "..."
    hlo_name = re.sub(r"_(\d+)$", r".\1", name)  # Trace names use _N where HLO has .N
    print(f"{total / calls / 1e3:8.3f} {100 * total / calls / max(busy, 1e-9):5.1f}% "
          f"{counts[name] / calls:6.1f}  {short}: {names.get(hlo_name, names.get(name, ''))}")
  # Group the rest too: many small kernels (optimiser updates) add up.
  groups = collections.Counter()
  for name, total in totals.items():
    ops = names.get(re.sub(r"_(\d+)$", r".\1", name), names.get(name, ""))
    kind = ("collective" if re.search(r"all-reduce|all-gather|reduce-scatter|collective|nccl", name + ops)
            else "matmul" if re.search(r"gemm|cublas|nvjet|xmma|cutlass|dot|custom-call", name + ops)
            else "attention" if re.search(r"fmha|cudnn|attention", name + ops)
            else "other")
    groups[kind] += total
  print("by kind (ms/call): " + ", ".join(f"{k} {v / calls / 1e3:.2f}" for k, v in groups.most_common()))
  _print_timeline(events, first_gpu, calls)


def _union_us(intervals) -> float:
  """Microseconds covered by the union of (start, end) intervals."""
  total, reach = 0.0, float("-inf")
  for start, end in sorted(intervals):
    if end > reach:
      total += end - max(start, reach)
      reach = end
  return total


def _print_timeline(events, gpu, calls, top_gaps=6):
  """Per stream kernel time, collectives hidden behind compute, and the GPU's longest idle gaps."""
  kernels = sorted(((e["ts"], e["ts"] + e["dur"], line, e["name"]) for p, line, e in events
                    if p == gpu and line.startswith("Stream")), key=lambda k: k[0])
  if not kernels:
    return
  is_collective = lambda name: bool(re.search(r"nccl|all-reduce|all-gather|reduce-scatter", name))
  per_stream = collections.Counter()
  for start, end, line, _ in kernels:
    per_stream[line] += end - start
  print("per stream (ms/call): " + ", ".join(f"{line} {us / calls / 1e3:.2f}"
                                             for line, us in per_stream.most_common()))
  collective = [(s, e) for s, e, _, n in kernels if is_collective(n)]
  compute = [(s, e) for s, e, _, n in kernels if not is_collective(n)]
  exposed = _union_us(collective + compute) - _union_us(compute)
  span = kernels[-1][1] - kernels[0][0]
  busy = _union_us([(s, e) for s, e, _, _ in kernels])
  print(f"timeline: {span / calls / 1e3:.2f} ms per call from the first kernel to the last; "
        f"some kernel running {busy / calls / 1e3:.2f} ms, idle {(span - busy) / calls / 1e3:.2f} ms; "
        f"collectives {_union_us(collective) / calls / 1e3:.2f} ms, of which not hidden behind "
        f"compute {exposed / calls / 1e3:.2f} ms")
  tiny = [e - s for s, e, _, _ in kernels if e - s < 10]
  print(f"kernels under 10 us: {len(tiny) / calls:.0f} per call, {sum(tiny) / calls / 1e3:.2f} ms")
  gaps, reach, last = [], kernels[0][1], kernels[0][3]
  for start, end, _, name in kernels[1:]:
    if start > reach:
      gaps.append((start - reach, last, name))
    if end > reach:
      reach, last = end, name
  short = lambda n: n if len(n) < 48 else n[:45] + "..."
  print(f"idle gaps over 20 us: {sum(g for g, _, _ in gaps if g > 20) / calls / 1e3:.2f} ms per call "
        f"in {sum(g > 20 for g, _, _ in gaps) / calls:.0f} gaps; the longest:")
  for gap, before, after in sorted(gaps, reverse=True)[:top_gaps]:
    print(f"  {gap / 1e3:7.3f} ms  after {short(before)}  before {short(after)}")
