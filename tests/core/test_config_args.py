"""Config helpers."""

from clip2point_jax.core import config_args


def test_default_data_dir_follows_tfds_convention(monkeypatch):
  monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
  assert config_args.default_data_dir() == "~/tensorflow_datasets"
  monkeypatch.setenv("TFDS_DATA_DIR", "/data/tfds")
  assert config_args.default_data_dir() == "/data/tfds"
