"""Developer helpers shared by tests, benchmarks and the Makefile (not deployed)."""
