"""Artifact scoring: the golf-eval protocol, decoys, the trusted re-evaluation, the file inventory."""
