"""Ctrl-C that is never lost.

Python raises KeyboardInterrupt in the main thread wherever that thread is
when the signal's handler runs. If it is inside a garbage-collector callback
(JAX registers one, `_xla_gc_callback`), the interpreter reports the
exception as "ignored" and drops it: the run goes on as if nothing had been
pressed. `keep_ctrl_c` delivers such a dropped interrupt again, so it is
raised at the next point the main thread reaches outside the callback.
"""

import _thread
import sys
import threading

_REDELIVER_AFTER_S = 0.05  # Long enough for the callback that dropped it to have returned.


def keep_ctrl_c() -> None:
  """Re-delivers a KeyboardInterrupt that a callback swallowed (see the module doc).

  Other unraisable exceptions go to the hook that was installed before.
  Calling it again adds nothing.
  """
  if getattr(sys.unraisablehook, "keeps_ctrl_c", False):
    return
  previous = sys.unraisablehook

  def hook(unraisable):
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
      # As if SIGINT arrived again, a moment later, from another thread: at once, Python's
      # handler would raise it inside this hook, which drops it too. Dropped again, it comes back.
      timer = threading.Timer(_REDELIVER_AFTER_S, _thread.interrupt_main)
      timer.daemon = True
      timer.start()
    else:
      previous(unraisable)

  hook.keeps_ctrl_c = True
  sys.unraisablehook = hook
