"""Comparing the settings a run, checkpoint or cache was made with against today's."""

import json
from typing import Any


def canonical(settings: Any) -> Any:
  """A JSON round trip: tuples become lists, so stored and fresh settings compare equal."""
  return json.loads(json.dumps(settings, sort_keys=True, default=str))


def differing_keys(old: dict, new: dict) -> list[str]:
  """Top-level keys whose values differ (a key missing on one side counts), sorted."""
  old, new = canonical(old), canonical(new)
  return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def describe_diff(old: Any, new: dict, *, template: str = "{key}: {old!r} there, {new!r} now",
                  sep: str = "; ", limit: int | None = None) -> str:
  """Every differing key as `template` words it, joined by `sep`, at most `limit` characters."""
  if not isinstance(old, dict):
    return "no settings recorded"
  old_c, new_c = canonical(old), canonical(new)
  text = sep.join(template.format(key=k, old=old_c.get(k), new=new_c.get(k))
                   for k in differing_keys(old, new))
  return text[:limit]
