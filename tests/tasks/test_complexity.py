"""The complexity report: ViT-B/32 shapes give the supplementary's Table 1 numbers for the GDPA."""

import os

import pytest

from clip2point_jax.core.config_args import load_sibling
from clip2point_jax.tasks import complexity

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "configs")


def _config(arg=None):
  return load_sibling(os.path.join(CONFIGS, "x.py"), "complexity").get_config(arg)


def test_gdpa_on_vit_b32_shapes_matches_table_1():
  config = _config()
  row = complexity.gdpa_row(config, complexity._Shapes(config))  # lowered and compiled, not run
  assert row["gmacs_per_cloud"] == pytest.approx(88.23, rel=0.03)
  assert row["trainable_params"] / 1e6 == pytest.approx(5.78, rel=0.03)
  assert row["trainable_params"] == 5_775_382
  assert row["frozen_params"] == 2 * 87_849_216  # two ViT-B/32 image towers (the paper's 87.85M each)


def test_tiny_report_has_four_consistent_rows(tmp_path, capsys):
  result = complexity.run(_config("tiny"), str(tmp_path))
  zero_shot, gdpa, pretrain, point = result["rows"]
  # Encoders dominate: 20 encoded images cost a little over 20/6 of zero-shot's 6.
  assert 3.0 < gdpa["gmacs_per_cloud"] / zero_shot["gmacs_per_cloud"] < 3.6
  # Two depth maps forward and backward (about 3x forward) plus one image forward: about 7 images.
  ratio = pretrain["gmacs_per_cloud"] / (zero_shot["gmacs_per_cloud"] / 6)
  assert 5.5 < ratio < 8.5
  assert gdpa["trainable_params"] == 23_062 and pretrain["trainable_params"] == zero_shot["frozen_params"] + 1
  out = capsys.readouterr().out
  assert (tmp_path / "complexity.json").exists() and "| GDPA (10 views, both paths) |" in out
  # The tiny 3D encoder: XLA's count holds the analytic one (Linear layers and attention sums) and
  # adds BatchNorm, softmax and kNN distances; its parameters are those it trains.
  assert point["gmacs_per_cloud"] > point["dense_gmacs_per_cloud"] > 0
  assert point["dense_gmacs_per_cloud"] * 1e9 == pytest.approx(_tiny_point_macs(256, 32))
  # By hand: stage 1's transition 40, stage 2 208 + a block 1,582, stage 3 672 + 5,778, proj 32 x 32.
  assert point["trainable_params"] == 40 + 208 + 1_582 + 672 + 5_778 + 1_024
  assert "| Point Transformer (authors, 1 feature) |" in out


def _tiny_point_macs(n, embed):
  """configs/pretrain.py:tiny's Point Transformer by hand: stages (blocks, planes, stride, k)."""
  total, c_in = 0, 3
  for blocks, c, stride, k in ((1, 8, 1, 8), (2, 16, 4, 8), (2, 32, 4, 8)):
    n //= stride
    total += n * c_in * c if stride == 1 else n * k * (3 + c_in) * c
    w = c // 8
    total += (blocks - 1) * (5 * n * c * c + n * k * (9 + 3 * c + c * w + w * w + c))
    c_in = c
  return total + c_in * embed


def test_each_row_is_announced_before_xla_works_on_it(monkeypatch, capsys):
  """XLA takes seconds per row (tens on a busy CPU): a line first says which row, ending in "…"."""
  seen = []
  rows = [(name, lambda config, shapes, name=name: seen.append((name, capsys.readouterr().out)) or {})
          for name, _ in complexity.ROWS]
  monkeypatch.setattr(complexity, "ROWS", tuple(rows))
  complexity.analyse_rows(_config("tiny"), shapes=None)
  assert len(seen) == 4
  for i, (name, printed) in enumerate(seen, 1):
    assert printed.rstrip().endswith("…") and f"{i}/4" in printed and name in printed and "lowering" in printed
