"""Open-vocabulary 3D detection: classify box proposals with CLIP2Point.

  boxes.py        box geometry: corners, points in boxes, crops, IoU
  evaluate.py     VoteNet/3DETR `eval_det` average precision and mAP
  scannet.py      ScanNet scans, VoteNet/3DETR `_bbox.npy` ground truth, proposals
  classifiers.py  the box-classifier seam: crops -> logits (zero-shot CLIP, a GDPA, oracle)
  pipeline.py     scenes -> padded crop batches -> logits -> scored detections
  synthetic.py    scenes of built-in shapes in ScanNet's file formats
  plots.py        bird's-eye-view pictures of scenes with labelled boxes
  report.py       what the detect task writes and prints: metrics, detections, the AP table
"""
