"""Benchmarks of taskqueue's embedded stack; `make bench` (python -m bench) runs them all."""
