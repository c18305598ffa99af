"""Open-vocabulary 3D detection: classify proposals with CLIP2Point, evaluate mAP.

For every scene: crop the points inside each proposal box (on the device,
or on the host with `crop.where=host`), drop boxes with too few points,
classify the crops in padded batches on the device, score each kept box
(class probability, times objectness if asked) and evaluate the detections
against the ground truth as VoteNet and 3DETR do.

Writes to the workdir: `metrics.json` (per-class AP and recall and mAP at
each IoU threshold, counts, settings, throughput: `compile_seconds` of the
first batch of crops, `crops_per_second` after it, `scenes_per_second` over
the whole pass; `detection/report.py`), `detections.json` (per scene, every
kept box with its most probable class and score) and `bev_<scene>.png` for
the first few scenes; prints a per-class table.
"""

import os
import time

import numpy as np

from clip2point_jax import validation
from clip2point_jax.core import parallel, paths
from clip2point_jax.detection import boxes as box_lib
from clip2point_jax.detection import classifiers, device_crops, evaluate, pipeline, report, scannet, synthetic
from clip2point_jax.loading import tiny_clip, trained_settings
from clip2point_jax.training import loop


def _prepare_inputs(config, workdir):
  """Makes the synthetic scenes and the tiny CLIP where the config asks for them."""
  if config.data.name == "synthetic" and not config.data.scans_dir:
    folder = synthetic.ensure_scene_folder(os.path.join(workdir, "synthetic_scenes"), config.seed,
                                           dict(config.data.synthetic))
    with config.unlocked():
      config.data.scans_dir = folder
  # A trained model's own CLIP and render settings; an empty clip.name then: a tiny random CLIP.
  trained_settings.fill_in(config)
  if config.classifier.kind == "zeroshot":
    tiny_clip.use_if_unnamed(config, workdir, "detect", note=", so expect near-zero mAP")


def run(config, workdir: str) -> dict:
  """Detects and evaluates; returns the metrics dict it writes."""
  validation.check_task(config)
  # Local: the scene readers and detection/report.py write and read local files.
  workdir = paths.require_local(workdir, "--workdir", "the detect task")
  os.makedirs(workdir, exist_ok=True)
  _prepare_inputs(config, workdir)
  # 1. Mesh.
  mesh = parallel.make_mesh()

  # 2. Data: the scene files (read one scene at a time in the loop).
  class_names, prompt_names = scannet.resolve_classes(config.data.classes)
  files = scannet.find_scenes(config.data.scans_dir, config.data.boxes_dir, config.data.proposals_dir,
                              config.data.scenes)
  if config.data.max_scenes:
    files = files[:config.data.max_scenes]

  # 3. Model: the box classifier (the seam in detection/classifiers.py), its
  # crops projected as `config.render` says; 4. step: it is the jitted
  # crops -> logits function the batcher calls.
  oracle = config.classifier.kind == classifiers.ORACLE
  classify = None if oracle else classifiers.build(config, prompt_names, mesh)
  on_device = config.crop.where == "device"
  crop = device_crops.crop_boxes if on_device else box_lib.crop_boxes
  batcher = None if oracle else pipeline.CropBatcher(classify, config.batch_size, config.crop.num_points, mesh,
                                                     on_device=on_device)

  # 5. Restore: nothing here; a builder that needs a checkpoint (GDPA) restores it itself.

  # 6. Evals and 7. loop: one pass over the scenes, cropping (on the device
  # or the host: `crop.where`) and classifying on the device...
  start = time.time()
  ground_truth, kept_boxes, kept_objectness, oracle_logits = [], [], [], []
  num_proposals = 0
  plotted = {}
  for i, f in enumerate(loop.progress(iterable=files, desc="detect", unit="scene")):
    scene = pipeline.load_scene(f, class_names, config.data.label_format)
    crops = crop(scene.scan.points, scene.proposals, num_points=config.crop.num_points,
                 margin=config.crop.margin, min_points=config.crop.min_points,
                 rng=np.random.default_rng([config.seed, i]))
    # Device crops stay there for the batcher; only which boxes are kept
    # comes to the host (K booleans). That waits for this scene's crops (and
    # the batches queued before them); this scene's batches then run while
    # the host reads the next scene.
    kept = np.asarray(crops.kept)[:len(scene.proposals)]
    ground_truth.append(scene.gt)
    kept_boxes.append(scene.proposals[kept])
    kept_objectness.append(scene.objectness[kept])
    num_proposals += len(scene.proposals)
    if oracle:
      oracle_logits.append(classifiers.oracle_logits(
          kept_boxes[-1], scene.gt.boxes, scene.gt.labels, len(class_names),
          min(config.eval.iou_thresholds)))
    else:
      batcher.add(crops.points, crops.mask, rows=np.nonzero(kept)[0])
    if i < config.num_plot_scenes:
      plotted[i] = scene.scan
  if oracle:
    logits = np.concatenate(oracle_logits) if oracle_logits else np.zeros((0, len(class_names)))
  else:
    logits = batcher.finish()
  seconds = time.time() - start

  # ...then the scored detections against the ground truth, as VoteNet and 3DETR do.
  per_scene_logits = np.split(logits, np.cumsum([len(b) for b in kept_boxes])[:-1]) if len(files) else []
  detections = [pipeline.detections_from_logits(b, o, l, use_objectness=config.scores.use_objectness,
                                                per_class=config.scores.per_class)
                for b, o, l in zip(kept_boxes, kept_objectness, per_scene_logits)]
  top1 = [pipeline.detections_from_logits(b, o, l, use_objectness=config.scores.use_objectness)
          for b, o, l in zip(kept_boxes, kept_objectness, per_scene_logits)]
  ap = evaluate.evaluate(detections, ground_truth, class_names, tuple(config.eval.iou_thresholds),
                         config.eval.use_11_point)
  scenes = report.Scenes(files, ground_truth, top1, plotted)
  result = report.summary(config, ap, scenes, class_names, num_proposals=num_proposals, seconds=seconds,
                          num_detections=sum(len(d.labels) for d in detections),
                          timer=batcher.timer if batcher else None)
  if loop.is_host0():
    report.write(config, workdir, scenes, class_names, result)
  return result
