"""Artifact scoring: the golf-eval protocol, audits, the trusted re-evaluation, the file inventory."""
