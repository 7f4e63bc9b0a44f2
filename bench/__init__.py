"""Benchmarks: scripts that print their figures (a table and one JSON line). Not tests."""
