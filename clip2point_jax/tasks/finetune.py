"""GDPA on the whole training split: the few-shot task with every cloud (configs/finetune.py)."""

from clip2point_jax.tasks.fewshot import run  # noqa: F401  (main dispatches on config.task)
