"""The loop timer: the first call timed apart, steady rates over the calls after it."""

import jax
import jax.numpy as jnp
import pytest

from clip2point_jax.core import throughput


class _Clock:
  """A clock the test moves by hand."""

  def __init__(self):
    self.now = 100.0

  def __call__(self):
    return self.now


def test_the_first_call_is_compile_time_and_the_rest_is_the_steady_rate():
  clock = _Clock()
  timer = throughput.Timer(clock)
  clock.now += 5.0  # before the first call (reading data): not compile time
  waited = []

  def step(x):
    clock.now += 2.0  # dispatch + compile + run of the first call
    waited.append(x)
    return x

  timer.call(step, 1, clouds=8)
  assert timer.compile_seconds == 2.0 and timer.first_counts == {"clouds": 8}
  assert timer.rates() == {"clouds_per_second": None}  # nothing steady yet
  for _ in range(3):
    timer.call(lambda: None, clouds=8)
  clock.now += 4.0  # the three calls' device time, read when the last output is ready
  lap = timer.lap()
  assert lap == throughput.Lap({"clouds": 24}, 4.0)
  assert timer.rates() == {"clouds_per_second": 6.0}
  # Time between laps (evaluations) is left out with resume.
  clock.now += 100.0
  timer.resume()
  timer.call(lambda: None, clouds=6)
  clock.now += 1.0
  assert timer.lap().seconds == 1.0 and timer.rates() == {"clouds_per_second": 30 / 5.0}
  assert timer.elapsed() == 112.0


def test_units_that_are_not_one_call_and_several_counts():
  clock = _Clock()
  timer = throughput.Timer(clock)
  for _ in range(3):  # three epochs of 4 steps of 16 samples
    clock.now += 10.0
    timer.done(None, epochs=1, steps=4, samples=64)
    timer.lap()
  assert timer.compile_seconds == 10.0
  assert timer.rates() == {"epochs_per_second": 0.1, "steps_per_second": 0.4, "samples_per_second": 6.4}


def test_pass_fields_steady_and_one_call():
  clock = _Clock()
  timer = throughput.Timer(clock)
  timer.call(lambda: clock.__setattr__("now", clock.now + 3.0), clouds=10)
  clock.now += 1.0
  timer.lap()
  one = throughput.pass_fields(timer, "clouds", total=10, seconds=4.0)
  assert one == {"compile_seconds": 3.0, "clouds_per_second": 2.5, "clouds_per_second_overall": 2.5,
                 "clouds_per_second_note": throughput.ONE_CALL_NOTE}
  timer.call(lambda: None, clouds=6)
  clock.now += 2.0
  timer.lap()
  two = throughput.pass_fields(timer, "clouds", total=16, seconds=8.0)
  assert two == {"compile_seconds": 3.0, "clouds_per_second": 3.0, "clouds_per_second_overall": 2.0}


def test_a_jitted_call_waits_for_its_first_output_only():
  f = jax.jit(lambda x: jnp.sin(x) @ x.T)
  timer = throughput.Timer()
  x = jnp.ones((64, 64))
  out = [timer.call(f, x, rows=64) for _ in range(3)]
  timer.lap(out[-1])
  assert timer.compile_seconds > 0 and timer.rates()["rows_per_second"] > 0
  assert timer.steady["rows"] == 128 and timer.steady_seconds > 0


def test_nothing_called():
  timer = throughput.Timer()
  assert timer.lap() == throughput.Lap({}, 0.0) and timer.compile_seconds is None
  assert throughput.pass_fields(timer, "crops", 0, 1.0)["crops_per_second"] == pytest.approx(0.0)
