"""bench/bench_compare.py on a tiny CLIP: every mode's row, and the exactness check it starts with."""

import sys

from bench import bench_compare


def test_tiny_run_times_every_mode_and_checks_the_pointclip_paths(monkeypatch, capsys):
  monkeypatch.setattr(sys, "argv", ["bench_compare.py", "--tiny", "--batch", "4", "--repeats", "1",
                                    "--points", "128"])
  rows = bench_compare.main()
  assert [r["mode"] for r in rows] == list(bench_compare.MODES)
  assert all(r["projection_clouds_per_s"] > 0 and r["zeroshot_clouds_per_s"] > 0 for r in rows)
  out = capsys.readouterr().out
  assert "pointclip: max |path - projector| = 0 " in out
  assert "pointclip_v2: max |path - projector| = 0 " in out
