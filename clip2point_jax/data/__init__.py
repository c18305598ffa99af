"""Datasets: file readers, TFDS builders, the registry and the input pipeline.

Tasks use `registry.load_split` and `pipeline.batches`; `registry.prepare`
(through `clip2point_jax.tasks.prepare`) builds a dataset once.
"""
