"""Mesh renderers for the RGB pre-training images (not yet implemented; see the renderer issue)."""
