"""bench/bench_checkpoint_overlap.py's CPU smoke run: every way of saving timed around a real save."""

import re
import sys

from bench import bench_checkpoint_overlap


def test_tiny_run_times_the_steps_around_each_way_of_saving(monkeypatch, capsys):
  modes = list(bench_checkpoint_overlap.MODES)
  monkeypatch.setattr(sys, "argv", ["bench_checkpoint_overlap.py", "--tiny", "--batch", "8", "--interval",
                                    "2", "--intervals", "3", "--save_after", "0", "--modes", *modes])
  bench_checkpoint_overlap.main()
  out = capsys.readouterr().out
  rows = {m[0]: m[1:] for m in re.findall(r"^(\w+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.na]+)\s+([\d.]+)$",
                                          out, re.M)}
  assert sorted(rows) == sorted(modes), out
  assert rows["none"][3] == "nan"  # no save, so no save call
  for mode in modes[1:]:
    assert float(rows[mode][3]) >= 0 and all(float(ms) > 0 for ms in rows[mode][:3]), (mode, out)
