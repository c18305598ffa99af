"""Classify your own files with your own class names, zero-shot.

  python -m clip2point_jax.main --config configs/classify.py \
      --config.inputs='path/*.ply' --config.classes='chair,table,lamp'

Reads .ply .off .obj .stl (meshes are surface-sampled) and .npy .npz .txt
.xyz .pts point files. `inputs` may hold several comma-separated globs. Add
`:modelnet` if your files are z-up like ModelNet's, and `:tiny` to run offline
on a tiny random CLIP made in the workdir (for tests; its guesses are random).
"""

from clip2point_jax.core.config_args import load_sibling, parse_arg

zeroshot = load_sibling(__file__, "zeroshot")


def get_config(arg=None):
  a = parse_arg(arg, modelnet=False, tiny=False)
  c = zeroshot.get_config("dataset=files" + (",tiny" if a["tiny"] else ""))
  c.task = "classify"  # the task module that runs (clip2point_jax/tasks/)
  c.inputs = ""  # comma-separated globs of your point-cloud or mesh files
  c.classes = ""  # comma-separated class names, at least two
  c.top_k = 3  # guesses printed per file
  c.data.align_modelnet = a["modelnet"]
  return c
