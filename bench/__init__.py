"""The benchmark suite of issue 6: ``python bench/run.py`` (see docs/performance.md)."""
