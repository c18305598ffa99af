"""The renderers' one exception type for bad input a caller can fix."""


class InputError(ValueError):
  """Bad points, meshes, views or settings; the message names what is wrong.

  `clip2point_jax.main` reports it as one line, like its own `UserError`.
  """
