"""Benchmarks; ``benchmarks.load`` is shared with the end-to-end tests."""
