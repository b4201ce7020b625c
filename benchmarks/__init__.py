"""Benchmarks of cellucid_nb against the reference exporter ``cellucid==0.0.9``.

Run everything with ``python -m benchmarks.run_all``; see ``benchmarks/README.md``.
``benchmarks.synthetic`` holds the deterministic data generator the benchmarks share.
"""
