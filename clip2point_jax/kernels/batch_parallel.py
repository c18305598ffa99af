"""Opaque inference kernels (Pallas calls) as ops XLA can split and differentiate.

XLA's partitioner cannot see into a Pallas kernel: left alone it gathers a
sharded batch onto every device and runs the whole kernel there. Wrapped by
`batch_parallel`, each device runs the kernel on the sequences (and, where
the rule says so, the heads) it holds, with no collectives; the other axes
and operands (weights) are replicated. Wrapped by `with_reference_gradient`,
a kernel that has no backward pass is replaced by its XLA reference wherever
it is differentiated.
"""

import jax
from jax.experimental.custom_partitioning import custom_partitioning
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec


def batch_parallel(local_fn, sharding_rule: str, parallel: str | None = None):
  """`local_fn(x, *others)` split over the devices holding x's parallel axes.

  Args:
    local_fn: runs on one device's share; x float[B, ...] first, then the
      other operands; returns one array or a tuple of them.
    sharding_rule: Shardy's einsum-like rule, e.g. "b t k, k n, n -> b t n"
      or, with two results, "b t h d, b t h d -> b t h d, b t h d".
    parallel: the factors that may be sharded, e.g. "b h", each sharded as
      it is in x (so each must be one of x's factors); by default x's first
      factor, the batch. The others are whole on every device.

  Returns:
    A function of the same arguments whose results are sharded as x's
    parallel axes.
  """
  operands, results = sharding_rule.split("->")
  operand_factors = [o.split() for o in operands.split(",")]
  result_factors = [r.split() for r in results.split(",")]
  x_factors = operand_factors[0]
  shardable = parallel.split() if parallel is not None else x_factors[:1]

  def shardings(mesh, arg_shapes):
    x_spec = tuple(getattr(arg_shapes[0].sharding, "spec", ())) + (None,) * len(x_factors)
    axes = {f: x_spec[x_factors.index(f)] for f in shardable}
    named = lambda factors: NamedSharding(mesh, PartitionSpec(*[axes.get(f) for f in factors]))
    outputs = [named(f) for f in result_factors]
    return (outputs[0] if len(outputs) == 1 else tuple(outputs),
            tuple(named(f) for f in operand_factors))

  def partition(mesh, arg_shapes, result_shape):
    del result_shape
    result_sharding, operand_shardings = shardings(mesh, arg_shapes)
    return mesh, local_fn, result_sharding, operand_shardings

  def infer(mesh, arg_shapes, result_shape):
    del result_shape
    return shardings(mesh, arg_shapes)[0]

  op = custom_partitioning(local_fn)
  # In order of first appearance: Shardy wants the factors sorted by index.
  others = [f for f in dict.fromkeys(f for fs in operand_factors for f in fs) if f not in shardable]
  op.def_partition(partition, infer_sharding_from_operands=infer, sharding_rule=sharding_rule,
                   need_replication_factors=tuple(others))
  return op


def with_reference_gradient(kernel, reference):
  """`kernel(*args)` when called plainly; `reference(*args)`, its forward and its
  gradient, when differentiated (so training runs exactly the reference)."""
  op = jax.custom_vjp(kernel)
  op.defvjp(lambda *args: jax.vjp(reference, *args), lambda vjp, grad_out: vjp(grad_out))
  return op
