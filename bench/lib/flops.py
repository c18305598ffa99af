"""Analytic matmul FLOPs (2 per multiply-add) of CLIP's image tower and of a pre-training sample."""

PRETRAIN_VIEWS_PER_SAMPLE = 2  # two depth maps of each cloud, at two camera distances
FORWARD_AND_BACKWARD = 3  # the backward pass costs twice the forward's matmuls


def vit_forward(config, channels: int | None = None) -> float:
  """FLOPs of one image through the vision tower and the projection.

  Args:
    config: a `clip.CLIPConfig`.
    channels: the patch embedding's input channels; by default the config's
      (3, RGB); 1 for depth maps through the embedding folded for grey input.
  """
  v = config.vision
  tokens = v.num_patches + 1
  d, m = v.hidden_size, v.intermediate_size
  per_layer = 2 * tokens * (4 * d * d + 2 * d * m) + 2 * 2 * tokens * tokens * d
  patch = 2 * v.num_patches * v.patch_size**2 * (channels or v.num_channels) * d
  return v.num_hidden_layers * per_layer + patch + 2 * d * config.projection_dim


def vit_forward_backward(config, channels: int | None = None) -> float:
  """FLOPs of one image's forward and backward pass (3 x the forward)."""
  return FORWARD_AND_BACKWARD * vit_forward(config, channels)


def pretrain_sample(config) -> float:
  """FLOPs of the trainable encoder for one pre-training sample: two depth maps, forward and backward."""
  return PRETRAIN_VIEWS_PER_SAMPLE * vit_forward_backward(config, channels=1)
