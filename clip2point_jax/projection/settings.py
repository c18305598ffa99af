"""How clouds become views: one frozen settings object built from a config's `render` block.

Every task that projects clouds (zero-shot, GDPA, pre-training, detection)
reads the same fields, so a projector option set on the command line reaches
all of them:

    render.image_size  CLIP's input size: every mode's views reach CLIP at it
    render.radius, render.distance                      CLIP2Point's projector
    render.mode        "hard" (CLIP2Point's z-buffer), "soft" (differentiable),
                       "pointclip" or "pointclip_v2" (those methods' projectors,
                       renderers/pointclip.py and renderers/pointclip_v2.py)
    render.sigma, render.gamma                          soft mode only
    render.zbuffer     hard mode only: "scatter", "sort", "dense" or "auto",
                       how each pixel keeps its nearest depth
                       (renderers/zbuffer.py); the images do not depend on it
    render.camera      "orthographic" (CLIP2Point's) or "perspective"
    render.fov         perspective only: vertical field of view in degrees
    render.clip_normalize  CLIP's mean/std on the views; None: as each
                       method's own code (CLIP2Point yes, the PointCLIPs no)

The views and their weights stay top-level config fields (`config.views`,
`config.view_weights`), where earlier versions put them, so old command lines
and trained GDPAs keep working. The PointCLIP modes render their own fixed
views (`MODE_VIEWS`): a config's default view list stands for them, any other
list is an error (`from_config`).
"""

import dataclasses
from typing import Any

import numpy as np

from clip2point_jax.errors import UserError
from renderers import cameras
from renderers import pointclip
from renderers import pointclip_v2
from renderers import points as projector

CAMERAS = ("orthographic", "perspective")
# The PointCLIP projectors by mode; each renders its own fixed views.
POINTCLIP_PROJECTORS = {"pointclip": pointclip, "pointclip_v2": pointclip_v2}
MODES = tuple(projector.RENDER_MODES) + tuple(POINTCLIP_PROJECTORS)
# Fields the render block gained after a89c44e, at their defaults. A cache or
# checkpoint made before they existed was made with exactly these values, so
# `identity` leaves them out while they hold them and old caches stay valid.
ADDED_DEFAULTS = {"mode": "hard", "camera": "orthographic", "fov": 60.0,
                  "sigma": projector.SOFT_SIGMA, "gamma": projector.SOFT_GAMMA,
                  "clip_normalize": None, "zbuffer": "auto"}
# Fields that choose how an image is computed, never what it is: `identity`
# always leaves them out, so a cache written with one z-buffer serves another.
IMPLEMENTATION_FIELDS = ("zbuffer",)
# The view lists the configs start from (zero-shot-style tasks the six, few-shot,
# pre-training and visualize the ten). In a PointCLIP mode they stand for that
# method's own views: the user chose no views.
DEFAULT_VIEW_LISTS = (tuple(cameras.VIEWS_ZERO_SHOT), tuple(cameras.VIEWS_PRETRAIN))


def _camera_direction(rotation: np.ndarray) -> tuple[float, float]:
  """(elevation, azimuth) in degrees, rounded to 0.1, of the side a view's camera sits on.

  The camera looks along its +z (depth grows with camera z), so it sits at
  -R^T e_z in the cloud's own coordinates; read with y up as
  `renderers.cameras` reads its views (x = cos e sin a, y = sin e, z = cos e cos a).
  """
  d = -np.asarray(rotation, np.float64).T @ np.array([0.0, 0.0, 1.0])
  elevation = np.degrees(np.arcsin(np.clip(d[1], -1.0, 1.0)))
  azimuth = np.degrees(np.arctan2(d[0], d[2]))
  elevation, azimuth = round(float(elevation), 1) + 0.0, round(float(azimuth), 1) + 0.0
  return elevation, 180.0 if azimuth == -180.0 else azimuth


def _mode_views() -> dict[str, tuple[tuple[float, float], ...]]:
  rot, tilt = pointclip_v2.views()
  return {"pointclip": tuple(_camera_direction(r) for r in pointclip.views()),
          "pointclip_v2": tuple(_camera_direction(t @ r) for r, t in zip(rot, tilt))}


# Each PointCLIP mode's views as (elevation, azimuth) pairs: names for its
# fixed cameras (figure titles, recorded configs) that also give their number.
# They are read off the projectors' rotations, so they cannot drift from them;
# the projectors themselves take no views.
MODE_VIEWS = _mode_views()


def is_pointclip(mode: str) -> bool:
  """Whether `mode` is one of the PointCLIP projectors (fixed views, no camera settings)."""
  return mode in POINTCLIP_PROJECTORS


def clip_normalizes(mode: str, clip_normalize) -> bool:
  """Whether the views get CLIP's mean/std: `clip_normalize`, or by default as the method's code does."""
  return (not is_pointclip(mode)) if clip_normalize is None else bool(clip_normalize)


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
  clip_normalize: bool = True  # resolved: CLIP's mean/std applied to the views
  zbuffer: str = "auto"  # hard mode: projector.ZBUFFER_MODES, all giving the same images

  @property
  def pointclip(self) -> bool:
    """A PointCLIP mode: its own views, clouds used as given, `image_size` only."""
    return is_pointclip(self.mode)

  def camera_model(self) -> cameras.Camera:
    return cameras.PerspectiveCamera(fov=self.fov) if self.camera == "perspective" else cameras.ORTHOGRAPHIC

  def projector_kwargs(self) -> dict[str, Any]:
    """`renderers.points.render_depth`'s keyword arguments, but views, distance and mask."""
    return dict(image_size=self.image_size, radius=self.radius, mode=self.mode, sigma=self.sigma,
                gamma=self.gamma, camera=self.camera_model(), zbuffer=self.zbuffer)


def from_config(render, views=None, view_weights=(), align_modelnet: bool = False) -> RenderSettings:
  """Checks a config's `render` block and builds the settings; errors name the field.

  Args:
    render: the `render` ConfigDict (or dict); fields it lacks take their defaults.
    views: (elevation, azimuth) pairs in degrees (default: the six zero-shot
      views). In a PointCLIP mode: None, a config's default list, or exactly
      `MODE_VIEWS[mode]`; the settings then hold `MODE_VIEWS[mode]`.
    view_weights: empty, or one weight per view.
    align_modelnet: turn z-up ModelNet clouds y-up before projecting
      (CLIP2Point's modes; the PointCLIPs use clouds as given).
  """
  get = render.get if hasattr(render, "get") else lambda k, d=None: getattr(render, k, d)
  defaults = RenderSettings()
  fields = {f.name: get(f.name, getattr(defaults, f.name))
            for f in dataclasses.fields(RenderSettings)
            if f.name not in ("views", "view_weights", "align_modelnet", "clip_normalize")}
  if fields["mode"] not in MODES:
    raise UserError(f"config.render.mode={fields['mode']!r}; use one of {', '.join(MODES)}")
  if fields["zbuffer"] not in projector.ZBUFFER_MODES:
    raise UserError(f"config.render.zbuffer={fields['zbuffer']!r}; use one of "
                    f"{', '.join(projector.ZBUFFER_MODES)}")
  if fields["camera"] not in CAMERAS:
    raise UserError(f"config.render.camera={fields['camera']!r}; use one of {', '.join(CAMERAS)}")
  if fields["camera"] == "perspective" and not 0.0 < fields["fov"] < 180.0:
    raise UserError(f"config.render.fov={fields['fov']!r}; use an angle in (0, 180) degrees")
  for name in ("image_size", "radius", "distance", "sigma", "gamma"):
    if not fields[name] > 0:
      raise UserError(f"config.render.{name}={fields[name]!r}; it must be positive")
  clip_normalize = get("clip_normalize", None)
  if clip_normalize is not None and not isinstance(clip_normalize, (bool, np.bool_)):
    raise UserError(f"config.render.clip_normalize={clip_normalize!r}; use True, False or None "
                    "(None: as the method's own code)")
  views = _views_of_mode(fields["mode"], views, defaults.views)
  if not views:
    raise UserError("config.views is empty; give (elevation, azimuth) pairs in degrees")
  view_weights = tuple(float(w) for w in (view_weights or ()))
  if view_weights and len(view_weights) != len(views):
    raise UserError(f"config.view_weights has {len(view_weights)} entries for {len(views)} views"
                    + (f" (render.mode={fields['mode']!r} renders {len(views)})" if is_pointclip(fields["mode"])
                       else ""))
  return RenderSettings(views=views, view_weights=view_weights, align_modelnet=bool(align_modelnet),
                        clip_normalize=clip_normalizes(fields["mode"], clip_normalize),
                        **{k: type(getattr(defaults, k))(v) for k, v in fields.items()})


def _views_of_mode(mode: str, views, default_views):
  """The views a mode renders, as (elevation, azimuth) tuples; UserError for views it cannot render."""
  given = None if views is None else tuple(tuple(float(a) for a in v) for v in views)
  if not is_pointclip(mode):
    return default_views if given is None else given
  own = MODE_VIEWS[mode]
  # The six zero-shot views are every zero-shot-style task's default, whatever
  # the method's count: those tasks adopt the method's views (`adopt_mode_views`).
  # A task that sizes a model by config.views (the GDPA) needs the method's count.
  if given is None or given == own or given == DEFAULT_VIEW_LISTS[0] or (
      given in DEFAULT_VIEW_LISTS and len(given) == len(own)):
    return own
  listed = ", ".join(f"({e:g}, {a:g})" for e, a in own)
  raise UserError(f"config.views lists {len(given)} views, but render.mode={mode!r} renders its own "
                  f"{len(own)} (renderers/{mode}.py) and takes no others; leave config.views at its "
                  f"default or give exactly these: --config.views=\"({listed})\"")


def adopt_mode_views(config) -> bool:
  """Sets `config.views` to a PointCLIP mode's own views (what it renders); True if it changed.

  Outputs that name the views (metrics.json, figure titles) then name the
  rendered ones. A no-op for CLIP2Point's modes. Checks as `from_config`.
  """
  mode = config.render.get("mode", "hard")
  if not is_pointclip(mode):
    return False
  own = _views_of_mode(mode, config.get("views"), RenderSettings().views)
  if tuple(tuple(v) for v in config.views) == own:
    return False
  with config.unlocked():
    config.views = own
  return True


def identity(render) -> dict[str, Any]:
  """The render block as caches and resume checks record it.

  Fields added after a89c44e are left out while they hold the value that
  version used, so feature caches and checkpoints it wrote still match;
  `IMPLEMENTATION_FIELDS` are always left out (they change no image).
  """
  block = render.to_dict() if hasattr(render, "to_dict") else dict(render)
  return {k: v for k, v in block.items()
          if k not in IMPLEMENTATION_FIELDS and not (k in ADDED_DEFAULTS and v == ADDED_DEFAULTS[k])}
