"""jaxdl's C++ kernels for XLA:CPU, called through ``jax.ffi``: built on first use (build.py)."""
