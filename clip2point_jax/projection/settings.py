"""How clouds become views: one frozen settings object built from a config's `render` block.

Every task that projects clouds (zero-shot, GDPA, pre-training, detection)
reads the same fields, so a projector option set on the command line reaches
all of them:

    render.image_size, render.radius, render.distance   CLIP2Point's projector
    render.mode        "hard" (CLIP2Point's z-buffer) or "soft" (differentiable)
    render.sigma, render.gamma                          soft mode only
    render.camera      "orthographic" (CLIP2Point's) or "perspective"
    render.fov         perspective only: vertical field of view in degrees

The views and their weights stay top-level config fields (`config.views`,
`config.view_weights`), where earlier versions put them, so old command lines
and trained GDPAs keep working.
"""

import dataclasses
from typing import Any

from clip2point_jax.errors import UserError
from renderers import cameras
from renderers import points as projector

CAMERAS = ("orthographic", "perspective")
# Fields the render block gained after a89c44e, at their defaults. A cache or
# checkpoint made before they existed was made with exactly these values, so
# `identity` leaves them out while they hold them and old caches stay valid.
ADDED_DEFAULTS = {"mode": "hard", "camera": "orthographic", "fov": 60.0,
                  "sigma": projector.SOFT_SIGMA, "gamma": projector.SOFT_GAMMA}


@dataclasses.dataclass(frozen=True)
class RenderSettings:
  """What the projector does to a batch of clouds; hashable, so jitted functions can close over it."""
  views: tuple[tuple[float, float], ...] = tuple(cameras.VIEWS_ZERO_SHOT)
  view_weights: tuple[float, ...] = ()
  image_size: int = projector.IMAGE_SIZE
  radius: float = projector.POINT_RADIUS
  distance: float = 1.0
  mode: str = "hard"
  camera: str = "orthographic"
  fov: float = 60.0
  sigma: float = projector.SOFT_SIGMA
  gamma: float = projector.SOFT_GAMMA
  align_modelnet: bool = False  # z-up ModelNet clouds are turned y-up first

  def camera_model(self) -> cameras.Camera:
    return cameras.PerspectiveCamera(fov=self.fov) if self.camera == "perspective" else cameras.ORTHOGRAPHIC

  def projector_kwargs(self) -> dict[str, Any]:
    """`renderers.points.render_depth`'s keyword arguments, but views, distance and mask."""
    return dict(image_size=self.image_size, radius=self.radius, mode=self.mode, sigma=self.sigma,
                gamma=self.gamma, camera=self.camera_model())


def from_config(render, views=None, view_weights=(), align_modelnet: bool = False) -> RenderSettings:
  """Checks a config's `render` block and builds the settings; errors name the field.

  Args:
    render: the `render` ConfigDict (or dict); fields it lacks take their defaults.
    views: (elevation, azimuth) pairs in degrees (default: the six zero-shot views).
    view_weights: empty, or one weight per view.
    align_modelnet: turn z-up ModelNet clouds y-up before projecting.
  """
  get = render.get if hasattr(render, "get") else lambda k, d=None: getattr(render, k, d)
  defaults = RenderSettings()
  fields = {f.name: get(f.name, getattr(defaults, f.name))
            for f in dataclasses.fields(RenderSettings)
            if f.name not in ("views", "view_weights", "align_modelnet")}
  if fields["mode"] not in projector.RENDER_MODES:
    raise UserError(f"config.render.mode={fields['mode']!r}; use one of {', '.join(projector.RENDER_MODES)}")
  if fields["camera"] not in CAMERAS:
    raise UserError(f"config.render.camera={fields['camera']!r}; use one of {', '.join(CAMERAS)}")
  if fields["camera"] == "perspective" and not 0.0 < fields["fov"] < 180.0:
    raise UserError(f"config.render.fov={fields['fov']!r}; use an angle in (0, 180) degrees")
  for name in ("image_size", "radius", "distance", "sigma", "gamma"):
    if not fields[name] > 0:
      raise UserError(f"config.render.{name}={fields[name]!r}; it must be positive")
  views = tuple(tuple(float(a) for a in v) for v in (defaults.views if views is None else views))
  if not views:
    raise UserError("config.views is empty; give (elevation, azimuth) pairs in degrees")
  view_weights = tuple(float(w) for w in (view_weights or ()))
  if view_weights and len(view_weights) != len(views):
    raise UserError(f"config.view_weights has {len(view_weights)} entries for {len(views)} views")
  return RenderSettings(views=views, view_weights=view_weights, align_modelnet=bool(align_modelnet),
                        **{k: type(getattr(defaults, k))(v) for k, v in fields.items()})


def identity(render) -> dict[str, Any]:
  """The render block as caches and resume checks record it.

  Fields added after a89c44e are left out while they hold the value that
  version used, so feature caches and checkpoints it wrote still match.
  """
  block = render.to_dict() if hasattr(render, "to_dict") else dict(render)
  return {k: v for k, v in block.items() if not (k in ADDED_DEFAULTS and v == ADDED_DEFAULTS[k])}
