"""Evaluation procedures beyond golf.metric's plain and sliding windows: score-first test-time training."""
