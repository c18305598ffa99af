"""CLIP2Point in JAX/Flax: `python -m clip2point_jax.main --config configs/<task>.py`."""

import os

# Only transformers' tokenizers are used, which need no PyTorch; without it,
# importing transformers prints "PyTorch was not found. Models won't be
# available..." on every command. That advisory (and transformers' other
# advisories) is off unless the user set the variable; its warnings and
# errors still show.
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

# The GPU XLA flags the CLI uses, for library users too (core/xla_defaults.py).
from clip2point_jax.core import xla_defaults as _xla_defaults  # pylint: disable=g-import-not-at-top

_xla_defaults.apply_on_import()
