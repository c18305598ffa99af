"""TFDS builders, one per dataset; `clip2point_jax.data.registry` names them."""
