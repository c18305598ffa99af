"""Progress bars whose ETA leaves out the first (compiling) step, on host 0 only.

    bar = progress(total=300, desc="pretrain", unit="step")   # "compiling…" until the first update

`training.loop` re-exports these; lower layers (the dataset builders, the
feature caches) use them from here.
"""

import sys

from tqdm import tqdm

from clip2point_jax.core.parallel import is_host0

# What a bar says until its first update: the first step of a jitted loop compiles.
COMPILING = "compiling…"


class Progress(tqdm):
  """A tqdm bar whose rate and ETA leave out the work before its first update.

  The first step of a jitted loop compiles: seconds to minutes, against
  milliseconds for the next ones. tqdm would average (or smooth) that in and
  promise hours for a one-minute run. Until the first update the bar says
  `first_note` instead; after it, the rate is the plain average since then.
  The elapsed time still counts from the start.
  """

  def __init__(self, *args, first_note: str = COMPILING, **kwargs):
    self.first_note = first_note
    self._base = None  # (n, clock) when the first update came.
    # tqdm sets `disable` while it closes, and the closing line needs this rate too.
    self._shown = not kwargs.get("disable", False)
    super().__init__(*args, **kwargs)

  def update(self, n=1):
    if self._base is None and self._shown:
      self._base = (self.n + n, self._time())
    return super().update(n)

  @property
  def format_dict(self):
    d = super().format_dict
    if not self._shown:
      return d
    if self._base is None:
      d["postfix"] = f"{self.first_note}, {d['postfix']}" if d["postfix"] else self.first_note
      d["rate"] = None
      return d
    n0, t0 = self._base
    done, seconds = self.n - n0, self._time() - t0
    d["rate"] = done / seconds if done > 0 and seconds > 0 else None
    if d["rate"] is None:
      d["initial"] = self.n  # tqdm then shows "?" rather than its own average.
    return d

  @classmethod
  def write(cls, s, file=None, end="\n", nolock=False):
    """tqdm.write, flushed: stdout is block-buffered in a pipe, the bars on stderr are not."""
    super().write(s, file=file, end=end, nolock=nolock)
    fp = file if file is not None else sys.stdout
    getattr(fp, "flush", lambda: None)()


def progress(**kwargs) -> Progress:
  """A progress bar on host 0 (silent elsewhere); see `Progress` for its ETA.

  A bar opened inside another one is cleared when it closes (tqdm's
  leave=None): every evaluation inside a training bar would otherwise leave
  a finished bar on the screen.
  """
  # Lines printed before the bar appear before it, also when stdout is a pipe.
  sys.stdout.flush()
  kwargs.setdefault("leave", None)
  return Progress(disable=not is_host0(), **kwargs)
