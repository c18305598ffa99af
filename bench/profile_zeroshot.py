"""Where the zero-shot step spends its GPU time: a profile summarised on the device.

  PYTHONPATH=. python bench/profile_zeroshot.py --variant depth-cudnn --batch 1024

Traces a few calls of the jitted points -> logits function with
`jax.profiler`, reads the Perfetto trace it writes and prints the GPU
kernels that take the most time, each with the HLO ops fused into it (from
the compiled module's text), so the table says which part of the model a
kernel is. Nothing large needs to leave the device machine.
"""

import argparse

from clip2point_jax.core import xla_defaults

xla_defaults.apply()  # Before jax starts.

import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp

from bench.lib import inputs
from bench.lib import models
from bench.lib import trace_summary
from renderers import cameras


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--variant", default="depth-cudnn", choices=models.VARIANTS)
  parser.add_argument("--batch", type=int, default=1024)
  parser.add_argument("--points", type=int, default=1024)
  parser.add_argument("--calls", type=int, default=3)
  parser.add_argument("--top", type=int, default=25)
  parser.add_argument("--tiny", action="store_true")
  args = parser.parse_args()
  config = models.clip_config(args.tiny)
  classify, params, text = models.zeroshot_classifier(config, jnp.bfloat16, args.variant,
                                                      cameras.VIEWS_ZERO_SHOT)
  clouds = inputs.clouds(args.batch, args.points, 0)
  hlo = classify.lower(params, text, clouds).compile().as_text()
  for _ in range(3):
    jax.block_until_ready(classify(params, text, clouds))
  trace_summary.summarize(lambda: jax.block_until_ready(classify(params, text, clouds)), hlo,
                          calls=args.calls, top=args.top, title=f"{args.variant} batch {args.batch}")


if __name__ == "__main__":
  main()
