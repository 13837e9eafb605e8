"""Plain-numpy reference twins of the production kernels, for tests and benches (clarity over speed)."""
