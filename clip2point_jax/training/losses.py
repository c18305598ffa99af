"""CLIP2Point's pre-training loss: intra- and cross-modality NT-Xent.

NT-Xent follows the supplementary's equations 1-4 (and lightly's `NTXentLoss`
without a memory bank). Rows are L2-normalised and e(a, b) = exp(a . b / tau).
For anchor i of one side the positive is row i of the other side; the
denominator sums over all N rows of the other side (positive included) and
the N - 1 other rows of its own side. The loss is averaged over the 2N
anchors of both sides, so `nt_xent(a, b) == nt_xent(b, a)`.

    L_intra = NTXent(F1, F2)            two depth maps, distances d1 and d2
    L_cross = NTXent((F1 + F2) / 2, F_I)  depth against the RGB rendering
    L = L_cross + L_intra / w^2 + log(w + 1)

`negatives_group=k` splits the batch into consecutive groups of k samples
that only see each other as negatives, and averages the groups' losses: what
the authors' `nn.DataParallel` run computed with k samples per GPU.
"""

from typing import Optional

import jax
import jax.numpy as jnp

from clip2point_jax.models.clip import l2_normalize

_HIGHEST = jax.lax.Precision.HIGHEST


def _nt_xent_one_group(a: jax.Array, b: jax.Array, temperature) -> jax.Array:
  n = a.shape[0]
  sim = lambda x, y: jnp.matmul(x, y.T, precision=_HIGHEST) / temperature
  ab, aa, bb = sim(a, b), sim(a, a), sim(b, b)
  self_pairs = jnp.eye(n, dtype=bool)
  aa = jnp.where(self_pairs, -jnp.inf, aa)
  bb = jnp.where(self_pairs, -jnp.inf, bb)
  positive = jnp.diagonal(ab)
  from_a = jax.nn.logsumexp(jnp.concatenate([ab, aa], axis=1), axis=1) - positive
  from_b = jax.nn.logsumexp(jnp.concatenate([ab.T, bb], axis=1), axis=1) - positive
  return (jnp.mean(from_a) + jnp.mean(from_b)) / 2


def nt_xent(a: jax.Array, b: jax.Array, *, temperature: float,
            negatives_group: Optional[int] = None) -> jax.Array:
  """NT-Xent between paired rows of `a` and `b`.

  Args:
    a, b: float[N, D] features (any scale; rows are L2-normalised here);
      row i of `a` and row i of `b` are a positive pair.
    temperature: tau > 0.
    negatives_group: None (or 0) for negatives from the whole batch; else k,
      dividing N: consecutive groups of k rows, losses averaged over groups.

  Returns:
    float32[] mean loss over the 2N anchors.
  """
  if a.shape != b.shape or a.ndim != 2:
    raise ValueError(f"nt_xent needs two [N, D] arrays of one shape, got {a.shape} and {b.shape}")
  a = l2_normalize(a.astype(jnp.float32))
  b = l2_normalize(b.astype(jnp.float32))
  if not negatives_group:
    return _nt_xent_one_group(a, b, temperature)
  n, d = a.shape
  if n % negatives_group:
    raise ValueError(f"negatives_group={negatives_group} does not divide the batch of {n}")
  groups = n // negatives_group
  per_group = jax.vmap(_nt_xent_one_group, in_axes=(0, 0, None))(
      a.reshape(groups, negatives_group, d), b.reshape(groups, negatives_group, d), temperature)
  return jnp.mean(per_group)


def pretrain_loss(f1: jax.Array, f2: jax.Array, f_image: jax.Array, w: jax.Array, *,
                  temperature: float, negatives_group: Optional[int] = None):
  """CLIP2Point's total loss.

  Args:
    f1, f2: float[N, D] depth-encoder features of the depth maps at the two
      distances.
    f_image: float[N, D] image-encoder features of the RGB rendering of the
      same view.
    w: float32[] the trainable balance weight (initialised to 1).
    temperature: tau of both NT-Xent terms.
    negatives_group: see `nt_xent`.

  Returns:
    (total float32[], {"l_intra": float32[], "l_cross": float32[]}).
  """
  kwargs = dict(temperature=temperature, negatives_group=negatives_group)
  l_intra = nt_xent(f1, f2, **kwargs)
  f_depth = (f1.astype(jnp.float32) + f2.astype(jnp.float32)) / 2
  l_cross = nt_xent(f_depth, f_image, **kwargs)
  total = l_cross + l_intra / (w * w) + jnp.log(w + 1)
  return total, {"l_intra": l_intra, "l_cross": l_cross}
