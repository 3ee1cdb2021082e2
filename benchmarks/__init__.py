"""Reproducible measurements printing ratios against a baseline measured in the same run.

Run each one from the repository root as `python -m benchmarks.<name>` (see README.md here).
"""
