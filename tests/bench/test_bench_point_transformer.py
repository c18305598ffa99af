"""bench/bench_point_transformer.py's CPU smoke run: the 3D step and zero-shot timed, FPS and kNN
timed alone, the depth encoder's rows beside them (their benchmarks stubbed: they have their own)."""

import re
import sys

import pytest

from bench import bench_point_transformer as bench
from clip2point_jax.models import point_transformer as pt


def test_tiny_run_times_the_step_its_searches_and_zero_shot(monkeypatch, capsys):
  depth_step = dict(ms=9.0, samples_per_s=222.0, waited_ms=9.5, compile_s=1.0, peak_gib=0.5,
                    program_gib=0.25, xla_tflop=1.0, analytic_tflop=0.9, tflops=100.0)
  depth_zero_shot = dict(ms=3.0, clouds_per_s=1333.0, b2b_clouds_per_s=1400.0, compile_s=1.0, gib=0.1)
  calls = []
  monkeypatch.setattr(bench.bench_pretrain, "bench", lambda a, d, b: calls.append(("step", b, a.tiny))
                      or depth_step)
  monkeypatch.setattr(bench.bench_zeroshot, "bench", lambda a, c, d, v, b, views: calls.append(
      ("zero-shot", b, v, len(views))) or depth_zero_shot)
  monkeypatch.setattr(sys, "argv", ["bench_point_transformer.py", "--tiny", "--batch", "4",
                                    "--zeroshot_batch", "6", "--repeats", "1", "--peak_tflops", "1"])
  steps, zero_shots = bench.main()
  assert [r["what"] for r in steps] == ["PT tiny step", "depth encoder step"]
  assert [r["what"] for r in zero_shots] == ["PT tiny zero-shot", "depth depth-xla zero-shot"]
  assert calls == [("step", 4, True), ("zero-shot", 6, "depth-xla", 6)]
  point = steps[0]
  assert point["samples_per_s"] > 0 and point["fps_ms"] > 0 and point["knn_ms"] > 0
  # The analytic FLOPs: dense MACs x 2 x 3 (fwd + bwd) x 2 augmentations x 4 samples.
  model = bench.point_encoder.model_from_config(bench._config(
      type("A", (), {"tiny": True, "preset": "authors", "dtype": "float32"})).point_transformer, 32)
  assert point["analytic_tflop"] * 1e12 == 4 * 2 * 3 * 2 * pt.dense_macs(model, 128)
  assert point["mfu"] == pytest.approx(point["analytic_tflop"] / (point["ms"] / 1e3) / 1.0)
  assert zero_shots[0]["clouds_per_s"] > 0
  assert steps[1]["mfu"] == 100.0 and steps[1]["samples_per_s"] == 222.0
  out = capsys.readouterr().out
  assert re.search(r"^PT tiny step +4 .* +\d+\.\d%$", out, re.M), out
  assert out.count("depth encoder step") == 2 and "blocks (1, 2, 2)" in out
