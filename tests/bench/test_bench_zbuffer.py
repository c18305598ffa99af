"""bench/bench_zbuffer.py's CPU smoke run: every z-buffer timed, checked against the scatter, costed."""

import re
import sys

from bench import bench_zbuffer


def test_tiny_run_checks_times_and_costs_every_zbuffer(monkeypatch, capsys):
  modes = bench_zbuffer.MODES + (bench_zbuffer.FLOAT_SCATTER,)
  monkeypatch.setattr(sys, "argv", ["bench_zbuffer.py", "--tiny", "--batch", "3", "--repeats", "1",
                                    "--check_batch", "2", "--modes", *modes])
  rows = bench_zbuffer.main()
  assert [(r["mode"], r["batch"]) for r in rows] == [(m, 3) for m in modes]
  assert all(r["clouds_per_s"] > 0 for r in rows)
  out = capsys.readouterr().out
  for mode in ("sort", "dense", "scatter-f32"):
    assert re.search(rf"^{mode}: 0 of \d+ pixels differ", out, re.M), out
  costs = dict(re.findall(r"^\| ([\w-]+) +\| +([\d.e+-]+) \|", out, re.M))
  assert set(costs) == set(modes) and all(float(v) > 0 for v in costs.values()), out
  # Dense tests every (point, pixel) pair: far more work than the scatter's candidates.
  assert float(costs["dense"]) > 100 * float(costs["scatter"])
