"""Classification metrics on the host, from logits and labels."""

import numpy as np


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
  """int64[C, C]; row = true class, column = predicted class."""
  matrix = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(matrix, (np.asarray(labels), np.asarray(predictions)), 1)
  return matrix


def classification_metrics(logits: np.ndarray, labels: np.ndarray, class_names) -> dict:
  """Top-1, top-5 (top-C below 5 classes), mean class accuracy, per-class accuracy and the confusion matrix.

  Args:
    logits: float[M, C]; labels: int[M]; class_names: C names.

  Returns:
    A JSON-ready dict. Classes with no examples get a per-class accuracy of
    None and are left out of the mean class accuracy.
  """
  logits, labels = np.asarray(logits), np.asarray(labels)
  num_classes = len(class_names)
  if logits.ndim != 2 or logits.shape[1] != num_classes or len(logits) != len(labels):
    raise ValueError(f"logits {logits.shape} do not fit {len(labels)} labels and {num_classes} classes")
  predictions = logits.argmax(-1)
  k = min(5, num_classes)
  top_k = np.argsort(-logits, axis=-1, kind="stable")[:, :k]
  matrix = confusion_matrix(labels, predictions, num_classes)
  support = matrix.sum(1)
  per_class = {
      name: (float(matrix[c, c] / support[c]) if support[c] else None)
      for c, name in enumerate(class_names)
  }
  seen = [v for v in per_class.values() if v is not None]
  return {
      "num_examples": int(len(labels)),
      "top1_accuracy": float(np.mean(predictions == labels)) if len(labels) else 0.0,
      "top5_accuracy": float(np.mean((top_k == labels[:, None]).any(-1))) if len(labels) else 0.0,
      "mean_class_accuracy": float(np.mean(seen)) if seen else 0.0,
      "chance_accuracy": 1.0 / num_classes,
      "per_class_accuracy": per_class,
      "confusion_matrix": matrix.tolist(),
      "class_names": list(class_names),
  }
