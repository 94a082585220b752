"""Pipelines: repro.yaml stages, repro.lock, the stage graph, staleness and execution.

Uses core (hashing, objects, workspace); never operations.
"""
