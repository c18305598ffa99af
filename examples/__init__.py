"""Small runnable demonstrations: `python -m examples.<name>` from the repo root."""
