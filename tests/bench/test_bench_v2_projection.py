"""bench/bench_v2_projection.py's CPU smoke run: the maps' variants checked against the shipped ones."""

import re
import sys

from bench import bench_v2_projection

VARIANTS = ("shipped", "shipped_reduce", "rowpool_border", "previous", "grid")


def test_tiny_run_checks_and_times_the_variants(monkeypatch, capsys):
  monkeypatch.setattr(sys, "argv", ["bench_v2_projection.py", "--batch", "2", "--points", "64",
                                    "--repeats", "1", "--variants", *VARIANTS])
  bench_v2_projection.main()
  out = capsys.readouterr().out
  rows = dict(re.findall(r"^(\w+) +([\d.e+-]+) +[\d.]+ +[\d.]+ +\d+", out, re.M))
  assert set(rows) == set(VARIANTS), out
  # The same maps up to how each program contracts the blur's multiply-adds.
  assert all(float(diff) <= 1e-6 for diff in rows.values()), out
