"""loop's console output: the ETA leaves out the compiling step, nested bars leave no copies, say() stays above bars."""

import io
import re
import sys

import pytest
import tqdm.std

from clip2point_jax.training import loop


def screen_lines(text: str) -> list[str]:
  """What a terminal shows after `text`: carriage returns, newlines and cursor-up applied; blank lines dropped."""
  lines, row, col = [[]], 0, 0
  for m in re.finditer(r"\x1b\[(\d*)([A-Za-z])|\r|\n|[^\x1b\r\n]", text):
    s = m.group(0)
    if s == "\r":
      col = 0
    elif s == "\n":
      row, col = row + 1, 0
      lines += [[] for _ in range(row + 1 - len(lines))]
    elif s.startswith("\x1b"):
      if m.group(2) == "A":
        row = max(0, row - int(m.group(1) or 1))
      elif m.group(2) == "K":
        del lines[row][col:]
    else:
      lines[row] += [" "] * (col + 1 - len(lines[row]))
      lines[row][col] = s
      col += 1
  return [text for text in ("".join(line).rstrip() for line in lines) if text]


class FakeClock:
  """tqdm's clock, moved by hand."""

  def __init__(self):
    self.now = 1000.0

  def __call__(self) -> float:
    return self.now


@pytest.fixture
def clock(monkeypatch):
  fake = FakeClock()
  monkeypatch.setattr(tqdm.std, "time", fake)  # Each bar reads its clock from here when made.
  return fake


def renders(out: io.StringIO) -> list[str]:
  return [r for r in out.getvalue().split("\r") if r.strip()]


def test_eta_and_rate_leave_out_the_slow_first_step(clock):
  out = io.StringIO()
  bar = loop.progress(total=100, desc="train", unit="step", file=out, mininterval=0)
  assert "compiling…" in renders(out)[-1] and "<?" in renders(out)[-1]
  clock.now += 60.0  # The first step compiles for a minute...
  bar.update(1)
  assert "compiling" not in renders(out)[-1] and "<?, ?step/s" in renders(out)[-1]
  for _ in range(9):  # ...then every step takes half a second.
    clock.now += 0.5
    bar.update(1)
  # 2 steps/s, 90 steps to go: 45 s. The whole-run average (10 steps in 64.5 s) would say 09:40.
  assert "10/100 [01:04<00:45,  2.00step/s]" in renders(out)[-1]
  bar.close()
  assert "2.00step/s" in renders(out)[-1]


def test_an_iterated_bar_also_starts_its_rate_after_the_first_item(clock):
  out = io.StringIO()
  for i in loop.progress(iterable=range(5), desc="eval", unit="batch", file=out, mininterval=0):
    clock.now += 30.0 if i == 0 else 1.0
  assert "5/5 [00:34<00:00,  1.00batch/s]" in renders(out)[-1]


def test_a_bar_opened_inside_another_is_cleared_when_it_closes(clock):
  out = io.StringIO()
  outer = loop.progress(total=2, desc="train", file=out, mininterval=0)
  for _ in range(2):  # Two evaluations inside the training bar.
    inner = loop.progress(total=1, desc="eval", file=out, mininterval=0)
    inner.update(1)
    inner.close()
    outer.update(1)
  outer.close()
  shown = screen_lines(out.getvalue())
  assert len(shown) == 1 and shown[0].startswith("train: 100%")


def test_say_prints_above_an_open_bar(clock, capsys):
  bar = loop.progress(total=3, desc="train", file=sys.stdout, mininterval=0)  # One stream: its true order.
  bar.update(1)
  loop.say("step 1: validation 50%")
  clock.now += 1.0
  bar.update(2)
  bar.close()
  # The bar was cleared before the line and drawn again below it: the terminal shows each once.
  message, bar_line = screen_lines(capsys.readouterr().out)
  assert message == "step 1: validation 50%"
  assert bar_line.startswith("train: 100%") and bar_line.endswith("| 3/3 [00:01<00:00,  2.00it/s]")


def test_frozen_heap_exempts_the_objects_alive_at_entry_and_gives_them_back():
  import gc  # pylint: disable=g-import-not-at-top
  alive = [object() for _ in range(1000)]
  with loop.frozen_heap():
    assert gc.get_freeze_count() >= len(alive)
  assert gc.get_freeze_count() == 0
