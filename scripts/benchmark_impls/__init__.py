"""One module per framework for scripts/benchmark.py; each builds a Runner for a workload."""
