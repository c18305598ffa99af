"""PNG figures for results: confusion matrices, depth-map grids, learning curves.

Each is written through `save` to a local or remote (gs://...) path.
Learning curves can also be drawn by a child process from a metrics file:

    python -m clip2point_jax.core.plots METRICS_JSONL PNG [TITLE]
"""

import json
import os
import sys

import matplotlib

matplotlib.use("Agg")  # Files only; no display on servers and CI.
import matplotlib.figure  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from clip2point_jax.core import paths  # noqa: E402


def save(fig, path: str, dpi: int) -> None:
  """Writes `fig` to `path` (local or remote; the format from its extension) and closes it.

  matplotlib writes to local files only, so it writes into the epath file object.
  """
  fmt = os.path.splitext(os.fspath(path))[1][1:].lower() or "png"
  with paths.path(path).open("wb") as f:
    fig.savefig(f, dpi=dpi, format=fmt)
  plt.close(fig)


def save_confusion_matrix(matrix: np.ndarray, class_names, path: str, title: str = "") -> None:
  """Row-normalised confusion matrix (true class per row) with counts."""
  matrix = np.asarray(matrix)
  rates = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
  n = len(class_names)
  size = max(4.0, 0.28 * n + 2.0)
  fig, ax = plt.subplots(figsize=(size + 1, size))
  im = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
  ax.set_xticks(range(n), class_names, rotation=90, fontsize=7 if n > 20 else 9)
  ax.set_yticks(range(n), class_names, fontsize=7 if n > 20 else 9)
  ax.set_xlabel("predicted")
  ax.set_ylabel("true")
  if n <= 20:
    for i in range(n):
      for j in range(n):
        if matrix[i, j]:
          ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                  color="white" if rates[i, j] > 0.5 else "black")
  fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
  ax.set_title(title)
  fig.tight_layout()
  save(fig, path, dpi=120)


def save_depth_grid(depth: np.ndarray, path: str, row_titles=None, view_titles=None) -> None:
  """Grid of depth maps: one row per cloud, one column per view.

  Args:
    depth: float[B, V, H, W] in [0, 1] (background 1.0).
  """
  depth = np.asarray(depth)
  b, v = depth.shape[:2]
  fig, axes = plt.subplots(b, v, figsize=(1.6 * v, 1.6 * b + 0.3), squeeze=False)
  for i in range(b):
    for j in range(v):
      ax = axes[i, j]
      ax.imshow(depth[i, j], cmap="gray", vmin=0.0, vmax=1.0)
      ax.set_xticks([])
      ax.set_yticks([])
      if i == 0 and view_titles is not None:
        ax.set_title(view_titles[j], fontsize=7)
      if j == 0 and row_titles is not None:
        ax.set_ylabel(row_titles[i], fontsize=7)
  fig.tight_layout()
  save(fig, path, dpi=100)


def save_curve_panels(panels: dict, path: str, xlabel: str = "step") -> None:
  """Several labelled lines per panel, e.g. one line per seed or per split.

  Args:
    panels: {panel title: {line label: [(x, y), ...]}}; empty lines are skipped.
    path: the PNG to write.
  """
  names = list(panels)
  fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.2), squeeze=False)
  for ax, name in zip(axes[0], names):
    for label, points in panels[name].items():
      if points:
        xs, ys = zip(*points)
        ax.plot(xs, ys, label=label, linewidth=1.2)
    ax.set_title(name, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.grid(alpha=0.3)
    if 1 < len(panels[name]) <= 10:
      ax.legend(fontsize=7)
  fig.tight_layout()
  save(fig, path, dpi=100)


def save_learning_curves(records, path: str, title: str = "") -> None:
  """Pre-training curves from metrics records (dicts with a "step").

  Panels: the loss and its terms (total, L_intra, L_cross), the balance weight
  w, the learning rate, and the zero-shot accuracies (keys ending in
  "_top1"), each drawn from the records that have it. Safe to call from a
  thread: it does not touch pyplot's global state.
  """
  records = [r for r in records if "step" in r]
  series = lambda key: [(r["step"], r[key]) for r in records if r.get(key) is not None]
  panels = [("loss", ["loss", "l_intra", "l_cross"]), ("balance weight w", ["w"]),
            ("learning rate", ["lr"]),
            ("zero-shot top-1 accuracy", sorted({k for r in records for k in r if k.endswith("_top1")}))]
  panels = [(name, [k for k in keys if series(k)]) for name, keys in panels]
  panels = [(name, keys) for name, keys in panels if keys]
  # A pyplot-free figure: training draws these in a background thread.
  fig = matplotlib.figure.Figure(figsize=(3.6 * max(len(panels), 1), 3.0))
  axes = fig.subplots(1, max(len(panels), 1), squeeze=False)
  for ax, (name, keys) in zip(axes[0], panels):
    for key in keys:
      xs, ys = zip(*series(key))
      ax.plot(xs, ys, marker="o" if len(xs) < 20 else None, markersize=3, label=key)
    ax.set_title(name, fontsize=10)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    if len(keys) > 1:
      ax.legend(fontsize=7)
  if title:
    fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  save(fig, path, dpi=90)


def learning_curves_from_file(metrics_path: str, path: str, title: str = "") -> None:
  """`save_learning_curves` of the records in a metrics.jsonl (local or remote).

  A last line without its newline is still being written, and is left out.
  """
  complete_lines = paths.path(metrics_path).read_text().split("\n")[:-1]
  save_learning_curves([json.loads(line) for line in complete_lines if line.strip()], path,
                       title=title)


def save_view_grid(rgb: np.ndarray, depth: np.ndarray, path: str, view_titles=None,
                   title: str = "") -> None:
  """The views of one shape: RGB renderings on top, depth maps below.

  Args:
    rgb: uint8[V, H, W, 3].
    depth: float[V, H', W'] in [0, 1] (background 1.0).
  """
  v = len(rgb)
  fig, axes = plt.subplots(2, v, figsize=(1.5 * v, 3.4), squeeze=False)
  for j in range(v):
    axes[0, j].imshow(rgb[j])
    axes[1, j].imshow(depth[j], cmap="gray", vmin=0.0, vmax=1.0)
    for ax in axes[:, j]:
      ax.set_xticks([])
      ax.set_yticks([])
    if view_titles is not None:
      axes[0, j].set_title(view_titles[j], fontsize=7)
  axes[0, 0].set_ylabel("RGB", fontsize=8)
  axes[1, 0].set_ylabel("depth", fontsize=8)
  if title:
    fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  save(fig, path, dpi=100)


def save_image_depth_pairs(rgb, depth, names, path: str, columns: int = 5) -> None:
  """One RGB image beside its depth map per entry (the supplementary's Figs. 2-4).

  Args:
    rgb: uint8[N, H, W, 3].
    depth: float[N, H', W'] in [0, 1].
    names: N labels; the depth map is labelled "<name>-depth".
  """
  n = len(rgb)
  columns = max(1, min(columns, n))
  rows = -(-n // columns)
  fig, axes = plt.subplots(rows, 2 * columns, figsize=(2.6 * columns, 1.45 * rows + 0.2),
                           squeeze=False)
  for ax in axes.ravel():
    ax.set_axis_off()
  for i in range(n):
    r, c = divmod(i, columns)
    axes[r, 2 * c].imshow(rgb[i])
    axes[r, 2 * c].set_title(names[i], fontsize=7)
    axes[r, 2 * c + 1].imshow(depth[i], cmap="gray", vmin=0.0, vmax=1.0)
    axes[r, 2 * c + 1].set_title(f"{names[i]}-depth", fontsize=7)
  fig.tight_layout()
  save(fig, path, dpi=100)


if __name__ == "__main__":
  learning_curves_from_file(*sys.argv[1:4])
