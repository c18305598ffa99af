"""The examples run end to end and do what they claim."""

import os
import sys

# `examples` lives at the repo root, outside the installed package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from examples import recover_rotation  # noqa: E402


def test_recover_rotation_converges():
  result = recover_rotation.run(shape="box", angle=35.0, num_points=512, steps=100)
  assert result["final_objective"] < 0.3 * result["initial_objective"], result
  assert result["final_error_deg"] < 0.5 * result["initial_error_deg"], result
  assert result["final_error_deg"] < 5.0, result
