"""CLIP's linear-probe baseline on the frozen per-view features: the GDPA's alternative few-shot model.

The probe sees what the GDPA sees, the V rendered views' features of each
path, and learns one linear layer:

    m_p = mean over the V views of path p's features      (p in `paths`)
    x   = l2_normalize([l2_normalize(m_p) for p in paths] concatenated)
    logits = x W + b,   W: [P*D, C], b: [C]

`paths` is ("clip",) when path P is CLIP's own image tower (the two paths
would only repeat one feature) and ("depth", "clip") when a pre-trained depth
encoder is given. Each path's mean is normalised before the concatenation so
that neither path outweighs the other by its feature norm; the second
normalisation scales by 1/sqrt(P). No dropout, BatchNorm, gate or logit
scale: a plain multinomial logistic regression, trained with the GDPA's
AdamW loop (its weight decay is the probe's L2 penalty).

Its classes are fixed at training: the logits' C columns are the training
classes, and the text features only size the layer (their count C).
Parameters: `adapter_probe/{kernel, bias}`, named so that the few-shot
config's default `optim.trainable` ("adapter_.*", ...) trains them.
"""

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from clip2point_jax.models.clip import l2_normalize
from clip2point_jax.models.gdpa import TorchDense

PATHS = ("depth", "clip")


class LinearProbe(nn.Module):
  """One linear layer on the views' mean feature of each path in `paths`.

  `point_path`: path P is a 3D encoder's one feature per cloud ([B, 1, D]).
  """
  num_views: int
  paths: Sequence[str] = ("clip",)
  point_path: bool = False

  def pooled(self, depth_features, clip_features):
    """float32[B, V, D] per path -> float32[B, P*D], unit rows (P = len(paths))."""
    features = {"depth": depth_features, "clip": clip_features}
    means = []
    for path in self.paths:
      x = features[path]
      views = 1 if path == "depth" and self.point_path else self.num_views
      if x.shape[1] != views:
        raise ValueError(f"the linear probe was built for {views} views, got {x.shape[1]} on "
                         f"path {path}")
      means.append(l2_normalize(x.astype(jnp.float32).mean(axis=1)))
    return l2_normalize(jnp.concatenate(means, axis=-1))

  @nn.compact
  def __call__(self, depth_features, clip_features, text_features, train: bool = False):
    """Logits float32[B, C] of the training classes; `text_features` float32[C, D] give C only.

    `train` is unused (nothing behaves differently in training).
    """
    del train
    return TorchDense(text_features.shape[0], name="adapter_probe")(
        self.pooled(depth_features, clip_features))
