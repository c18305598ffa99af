"""Benchmarks. Each script runs from the repository root as

  PYTHONPATH=$PWD python3 bench/<script>.py

and imports what they share from `bench.lib`.
"""
