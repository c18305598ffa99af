"""A transformer's layers held as one stacked array per kind of tensor.

ViT-B/32 has 12 layers of 16 tensors each. LAMB needs every tensor's norm, so
an update over the 201 separate tensors runs several small GPU kernels per
tensor (~600 in all), back to back at the end of each train step. Held
stacked, the 12 copies of a kind (say `mlp/fc1/kernel`) are one array with a
leading layer axis, and the optimiser updates all 12 at once:

    stack({"encoder": {"layers_0": {"w": a}, "layers_1": {"w": b}}})
      == {"encoder": {"layers": {"w": stack([a, b])}}}

`unstack` is its inverse; inside a jitted step it hands the model plain
per-layer slices and gives the gradient back stacked. LAMB keeps torch's
per-tensor trust ratios by taking norms per layer slice (`optim.lamb(stacked=
stacked_mask(params))`).

Measured on an H200 (bench/RESULTS.md, fifth session): 668 fewer kernels per
pre-training step and the optimiser alone 3x faster, but the step no faster,
as cuBLAS then picks slower kernels for the weight gradients. Hence
`config.optim.stack_layers` is off by default.
"""

import re
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

STACKED = "layers"
_LAYER_KEY = re.compile(r"layers_(\d+)")


def _dtype(x):
  return np.dtype(x.dtype) if hasattr(x, "dtype") else np.result_type(x)


def _signature(tree):
  return (jax.tree.structure(tree),
          tuple((tuple(np.shape(x)), str(_dtype(x))) for x in jax.tree.leaves(tree)))


def _stack_leaves(leaves):
  if isinstance(leaves[0], jax.ShapeDtypeStruct):
    return jax.ShapeDtypeStruct((len(leaves),) + tuple(leaves[0].shape), leaves[0].dtype)
  if any(isinstance(x, jax.Array) for x in leaves):
    return jnp.stack(leaves)
  return np.stack([np.asarray(x) for x in leaves])


def stack(tree):
  """Replaces each dict's `layers_0 ... layers_{L-1}` by one `layers` subtree.

  Args:
    tree: nested dicts of arrays (numpy, jax or `jax.ShapeDtypeStruct`).

  Returns:
    The same nesting where every dict whose keys include exactly
    `layers_0 ... layers_{L-1}` (L >= 2, identical structure, shapes and
    dtypes) holds them as `layers`, each leaf float[L, ...]. Other dicts,
    and layer sets that are partial or differ, are left as they are.
  """
  if not isinstance(tree, Mapping):
    return tree
  out = {k: stack(v) for k, v in tree.items()}
  indices = sorted(int(m.group(1)) for k in out if (m := _LAYER_KEY.fullmatch(k)))
  if len(indices) < 2 or indices != list(range(len(indices))) or STACKED in out:
    return out
  layers = [out.pop(f"layers_{i}") for i in indices]
  if len({_signature(layer) for layer in layers}) != 1:
    out.update({f"layers_{i}": layer for i, layer in zip(indices, layers)})
    return out
  out[STACKED] = jax.tree.map(lambda *leaves: _stack_leaves(leaves), *layers)
  return out


@jax.custom_vjp
def _slices(x):
  return tuple(x[i] for i in range(x.shape[0]))


def _slices_fwd(x):
  return _slices(x), None


def _slices_bwd(_, cotangents):
  # One stacked gradient, materialised: XLA otherwise fuses the concatenate
  # into LAMB's norm reductions, which then run several times slower.
  return (jax.lax.optimization_barrier(jnp.stack(cotangents)),)


_slices.defvjp(_slices_fwd, _slices_bwd)


def _unstack_leaf(x):
  if isinstance(x, np.ndarray):
    return tuple(x[i] for i in range(x.shape[0]))
  return _slices(x)


def unstack(tree):
  """The inverse of `stack`: each `layers` subtree back to `layers_0 ... layers_{L-1}`.

  Works on numpy arrays and on jax arrays inside or outside jit; the
  gradient of the per-layer slices with respect to the stacked leaves is
  their stack. Trees without a `layers` subtree come back unchanged.
  """
  if not isinstance(tree, Mapping):
    return tree
  out = {k: unstack(v) for k, v in tree.items() if k != STACKED}
  stacked = tree.get(STACKED)
  if isinstance(stacked, Mapping):
    leaves, treedef = jax.tree.flatten(stacked)
    slices = [_unstack_leaf(x) for x in leaves]
    for i in range(len(slices[0]) if slices else 0):
      out[f"layers_{i}"] = jax.tree.unflatten(treedef, [s[i] for s in slices])
  elif STACKED in tree:
    out[STACKED] = unstack(stacked)
  return out


def stacked_mask(tree) -> Any:
  """bool tree like `tree`: True for leaves inside a stacked `layers` subtree."""
  def mark(value, inside):
    if isinstance(value, Mapping):
      return {k: mark(v, inside or (k == STACKED and isinstance(v, Mapping))) for k, v in value.items()}
    return jax.tree.map(lambda _: inside, value)
  return mark(tree, False)


def abstract(tree) -> Any:
  """`jax.ShapeDtypeStruct`s of `tree`'s leaves, to stack its layout without copying it."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), _dtype(x)), tree)
