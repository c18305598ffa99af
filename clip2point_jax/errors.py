"""The one exception type for mistakes a user can cause and fix.

`main` turns a `UserError` into a single line on stderr and exit status 1, so
messages must name the file, key or value at fault and say what was expected.
"""


class UserError(ValueError):
  """Bad input, path, checkpoint or config value; the message is shown as is."""
