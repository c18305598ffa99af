"""bench/lib/trace_summary.py's timeline: hidden collectives and idle gaps, on a hand-made trace."""

from bench.lib import trace_summary


def _kernel(stream, name, ts, dur):
  return ("/device:GPU:0", stream, {"ph": "X", "name": name, "ts": ts, "dur": dur})


def test_union_counts_overlaps_once():
  assert trace_summary._union_us([(0, 10), (5, 20), (30, 35), (31, 32)]) == 25  # pylint: disable=protected-access


def test_timeline_splits_hidden_and_exposed_collectives_and_names_the_longest_gap(capsys):
  events = [
      _kernel("Stream #1", "gemm_a", 0, 100),
      _kernel("Stream #2", "ncclDevKernel_AllReduce", 60, 70),  # 40 us hidden, 30 exposed
      _kernel("Stream #1", "loop_fusion", 400, 5),  # a 270 us gap before it
      _kernel("Stream #1", "gemm_b", 410, 90),  # a 5 us gap: under the 20 us threshold
  ]
  trace_summary._print_timeline(events, "/device:GPU:0", calls=1)  # pylint: disable=protected-access
  out = capsys.readouterr().out
  assert "0.50 ms per call from the first kernel to the last" in out
  assert "some kernel running 0.23 ms, idle 0.28 ms" in out
  assert "collectives 0.07 ms, of which not hidden behind compute 0.03 ms" in out
  assert "kernels under 10 us: 1 per call" in out
  assert "idle gaps over 20 us: 0.27 ms per call in 1 gaps" in out
  assert "0.270 ms  after ncclDevKernel_AllReduce  before loop_fusion" in out
