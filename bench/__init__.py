"""Benchmark scripts: they print figures; run them with the project's venv."""
