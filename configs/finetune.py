"""GDPA trained on the whole training split (fully supervised classification).

  python -m clip2point_jax.main --config configs/finetune.py:dataset=scanobjectnn_pb_t50_rs \
      --config.clip.name=openai/clip-vit-base-patch32 --workdir runs/finetune_pb_t50_rs

`dataset=` one of modelnet40 (or modelnet40_aligned), modelnet10,
scanobjectnn_objbg, scanobjectnn_objonly, scanobjectnn_pb_t50_rs; `tiny` for
tests. The same model and options as configs/fewshot.py, with every training
cloud and one seed.
"""

from clip2point_jax.core.config_args import load_sibling, parse_arg

fewshot = load_sibling(__file__, "fewshot")


def get_config(arg=None):
  a = parse_arg(arg, dataset="modelnet40", tiny=False)
  c = fewshot.get_config(f"dataset={a['dataset']},shots=0" + (",tiny" if a["tiny"] else ""))
  c.task = "finetune"
  c.seeds = (0,)
  c.checkpoint_every_epochs = 0 if a["tiny"] else 10
  return c
