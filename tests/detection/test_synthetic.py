"""Synthetic scenes: their files read back, and AP of a perfect and a shuffled classifier."""

import numpy as np
import pytest

from clip2point_jax.data import primitives
from clip2point_jax.detection import boxes as box_lib
from clip2point_jax.detection import classifiers, evaluate, pipeline, scannet, synthetic

CLASSES = tuple(primitives.CLASS_NAMES)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  root = tmp_path_factory.mktemp("synthetic_scenes")
  # 4 scenes x 4 objects: every one of the 8 classes twice.
  scenes = synthetic.write_scene_folder(str(root), 4, seed=3, num_objects=4, points_per_object=300,
                                        floor_points=1500)
  return str(root), scenes


def _load(folder):
  root, made = folder
  files = scannet.find_scenes(root)
  return [pipeline.load_scene(f, CLASSES, "index") for f in files], made


def test_files_read_back_as_generated(folder):
  loaded, made = _load(folder)
  assert [s.name for s in loaded] == [m.name for m in made]
  labels = np.concatenate([m.gt_labels for m in made])
  np.testing.assert_array_equal(np.bincount(labels, minlength=8), [2] * 8)
  for s, m in zip(loaded, made):
    # The ply is in the raw frame; the reader's alignment brings it back.
    assert not np.allclose(scannet.read_ply_vertices(folder[0] + f"/{m.name}/{m.name}_vh_clean_2.ply").points[:5],
                           m.points[:5], atol=0.1)
    np.testing.assert_allclose(s.scan.points, m.points, atol=1e-4)
    np.testing.assert_array_equal(s.scan.colors, m.colors)
    np.testing.assert_allclose(s.gt.boxes, m.gt_boxes, atol=1e-9)
    np.testing.assert_array_equal(s.gt.labels, m.gt_labels)
    np.testing.assert_allclose(s.proposals, m.proposals, atol=1e-5)
    # Each ground-truth box holds its object: every point of it is inside.
    inside = box_lib.points_in_boxes(m.points, m.gt_boxes)
    assert (inside.sum(1) >= 300).all()
    iou = box_lib.iou_3d(m.proposals, m.gt_boxes)
    jittered = m.proposal_source >= 0
    assert sorted(m.proposal_source[jittered]) == list(range(len(m.gt_labels)))
    assert (iou[jittered, m.proposal_source[jittered]] >= 0.55).all()
    assert (iou[~jittered].max(1) <= 0.1).all()


def _oracle_from_provenance(made, kept):
  """Logits a perfect classifier gives: the class of the box a proposal jitters; uniform for others."""
  out = []
  for m, k in zip(made, kept):
    logits = np.zeros((int(k.sum()), len(CLASSES)))
    source = m.proposal_source[k]
    logits[np.nonzero(source >= 0)[0], m.gt_labels[source[source >= 0]]] = 20.0
    out.append(logits)
  return out


def _crop_all(loaded):
  return [box_lib.crop_boxes(s.scan.points, s.proposals, num_points=128, margin=0.1, min_points=5,
                             rng=np.random.default_rng(i)) for i, s in enumerate(loaded)]


def test_perfect_classifier_scores_ap_1_and_shuffled_labels_do_not(folder):
  loaded, made = _load(folder)
  crops = _crop_all(loaded)
  kept = [c.kept for c in crops]
  # Every jittered proposal holds its object's points; the box in the air is dropped.
  for m, k, c in zip(made, kept, crops):
    assert k[m.proposal_source >= 0].all()
    assert (~k).sum() >= 1 and (c.counts[~k] < 5).all()
  logits = _oracle_from_provenance(made, kept)
  gt = [s.gt for s in loaded]
  for per_class in (False, True):
    det = [pipeline.detections_from_logits(s.proposals[k], s.objectness[k], l, per_class=per_class)
           for s, k, l in zip(loaded, kept, logits)]
    result = evaluate.evaluate(det, gt, CLASSES, (0.25, 0.5))
    for key in ("iou_0.25", "iou_0.5"):
      assert result[key]["mAP"] == 1.0, (per_class, key, result[key]["ap"])
      assert set(result[key]["ap"].values()) == {1.0}
  # The ground-truth oracle of the task agrees with the provenance.
  for s, k, l in zip(loaded, kept, logits):
    np.testing.assert_array_equal(
        classifiers.oracle_logits(s.proposals[k], s.gt.boxes, s.gt.labels, len(CLASSES)), l)
  # Labels shuffled among the boxes: the same boxes, mostly the wrong classes.
  rng = np.random.default_rng(0)
  flat = np.concatenate(logits)
  shuffled = np.split(flat[rng.permutation(len(flat))], np.cumsum([len(l) for l in logits])[:-1])
  det = [pipeline.detections_from_logits(s.proposals[k], s.objectness[k], l)
         for s, k, l in zip(loaded, kept, shuffled)]
  result = evaluate.evaluate(det, gt, CLASSES, (0.25,))["iou_0.25"]
  assert result["mAP"] < 0.3, result["ap"]


def test_oriented_scene_files_and_perfect_classifier(tmp_path):
  scene = synthetic.make_scene("scene0100_00", np.random.default_rng(7), num_objects=3, points_per_object=300,
                               floor_points=800, oriented=True)
  synthetic.write_scene(str(tmp_path), scene, proposals_format="npy")
  rows = np.load(tmp_path / "scene0100_00_bbox.npy")
  assert rows.shape == (3, 8) and np.all(rows[:, 6] != 0)  # ... heading label
  loaded = pipeline.load_scene(scannet.find_scenes(str(tmp_path))[0], CLASSES, "index")
  np.testing.assert_allclose(loaded.gt.boxes, scene.gt_boxes, atol=1e-9)
  # Each turned box holds its whole object.
  assert (box_lib.points_in_boxes(scene.points, scene.gt_boxes).sum(1) >= 300).all()
  crops = box_lib.crop_boxes(loaded.scan.points, loaded.proposals, num_points=128, margin=0.1,
                             min_points=5, rng=np.random.default_rng(0))
  logits = _oracle_from_provenance([scene], [crops.kept])[0]
  det = pipeline.detections_from_logits(loaded.proposals[crops.kept], loaded.objectness[crops.kept], logits)
  result = evaluate.evaluate([det], [loaded.gt], CLASSES, (0.25, 0.5))
  # The classes with ground truth (the uniform logits of false positives
  # make them class 0 detections, which score 0 if class 0 has no box here).
  for key in ("iou_0.25", "iou_0.5"):
    assert all(result[key]["ap"][CLASSES[c]] == 1.0 for c in scene.gt_labels)
