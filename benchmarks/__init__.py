"""Benchmark suites: ``python -m benchmarks {zoo,paper,speed}`` (results in ``benchmarks/results/``)."""
