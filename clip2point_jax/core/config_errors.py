"""One line for a config mistake out of the exceptions absl and ml_collections raise around it.

    message = config_errors.one_line(error, sys.argv)
    # "the config has no field 'lerning_rate'; did you mean 'learning_rate'?"

Loading a config file runs its `get_config`, and `config_flags` re-raises
what that raises, and an override's typo, wrapped in tracebacks and other
exceptions; the command line shows the user only the line that matters.
"""

import re

from clip2point_jax.errors import UserError


def overrides(argv) -> list[str]:
  """The dotted fields `--config.<field>=...` arguments set, in order."""
  return [m.group(1) for a in argv for m in [re.match(r"--config\.([\w.]+)", a)] if m]


def one_line(error: BaseException, argv=()) -> str:
  """The useful line out of the exceptions config_flags wraps around ours (`argv`: the command's, to
  name an override's full field)."""
  chain, seen = [], error
  while seen is not None and seen not in chain:
    chain.append(seen)
    seen = seen.__cause__ or seen.__context__
  text = " ".join(str(e) for e in chain)
  # config_flags re-raises get_config's exceptions with traceback text.
  ours = re.findall(r"UserError: (.*)", text)
  if ours:
    return ours[-1].strip()
  for e in chain:
    if isinstance(e, UserError):
      return str(e)
  # ml_collections: 'Did you mean "right" instead of "wrong"?', or (through config_flags) the
  # wrong key quoted first.
  typo = re.search(r'Did you mean "(\w+)" instead of "(\w+)"', text)
  if typo:
    return f"the config has no field {typo.group(2)!r}; did you mean {typo.group(1)!r}?"
  typo = re.search(r"'(\w+)'.*?Did you mean \"(\w+)\"", text.replace("\\'", "'"))
  if typo:
    return f"the config has no field {typo.group(1)!r}; did you mean {typo.group(2)!r}?"
  for e in chain:
    if isinstance(e, OSError) and "Failed loading config file" in str(e):
      attempted = re.findall(r"^\s{4}(\S.*)$", str(e), re.M)
      return f"cannot load config file {attempted[0] if attempted else ''}: no such file"
  for e in chain:
    if isinstance(e, (KeyError, AttributeError)):
      missing = str(e.args[0] if e.args else e).strip("'\"")
      named = [f for f in overrides(argv) if missing in f.split(".")]
      field = named[0] if named else missing
      return (f"the config has no field {field!r}; run the same command with --help to list its "
              "fields")
  lines = [line for line in str(error).splitlines() if line.strip()]
  return lines[-1].strip() if lines else repr(error)
