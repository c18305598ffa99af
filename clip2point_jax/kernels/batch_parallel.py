"""Opaque inference kernels (Pallas calls) as ops XLA can split and differentiate.

XLA's partitioner cannot see into a Pallas kernel: left alone it gathers a
sharded batch onto every device and runs the whole kernel there. Wrapped by
`batch_parallel`, each device runs the kernel on the sequences it holds, with
no collectives; the other operands (weights) are replicated. Wrapped by
`with_reference_gradient`, a kernel that has no backward pass is replaced by
its XLA reference wherever it is differentiated.
"""

import jax
from jax.experimental.custom_partitioning import custom_partitioning
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec


def batch_parallel(local_fn, sharding_rule: str):
  """`local_fn(x, *weights)` split over x's first axis.

  Args:
    local_fn: runs on one device's share; x float[B, ...] first, then weights.
    sharding_rule: Shardy's einsum-like rule, e.g. "b t k, k n, n -> b t n";
      its first factor is the batch, the only one that may be sharded.

  Returns:
    A function of the same arguments, whose output is sharded as x's batch.
  """
  operands, result = sharding_rule.split("->")
  operand_factors = [o.split() for o in operands.split(",")]
  result_factors = result.split()
  batch = operand_factors[0][0]

  def spec(factors, x_spec):
    return PartitionSpec(*[x_spec if f == batch else None for f in factors])

  def shardings(mesh, arg_shapes):
    x_spec = (tuple(getattr(arg_shapes[0].sharding, "spec", ())) + (None,))[0]
    return (NamedSharding(mesh, spec(result_factors, x_spec)),
            tuple(NamedSharding(mesh, spec(f, x_spec)) for f in operand_factors))

  def partition(mesh, arg_shapes, result_shape):
    del result_shape
    result_sharding, operand_shardings = shardings(mesh, arg_shapes)
    return mesh, local_fn, result_sharding, operand_shardings

  def infer(mesh, arg_shapes, result_shape):
    del result_shape
    return shardings(mesh, arg_shapes)[0]

  op = custom_partitioning(local_fn)
  # In order of first appearance: Shardy wants the factors sorted by index.
  others = [f for f in dict.fromkeys(f for fs in operand_factors for f in fs) if f != batch]
  op.def_partition(partition, infer_sharding_from_operands=infer, sharding_rule=sharding_rule,
                   need_replication_factors=tuple(others))
  return op


def with_reference_gradient(kernel, reference):
  """`kernel(*args)` when called plainly; `reference(*args)`, its forward and its
  gradient, when differentiated (so training runs exactly the reference)."""
  op = jax.custom_vjp(kernel)
  op.defvjp(lambda *args: jax.vjp(reference, *args), lambda vjp, grad_out: vjp(grad_out))
  return op
