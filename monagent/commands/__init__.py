"""CLI command groups; each module has ``register(subparsers)``. Heavy imports stay inside functions."""
