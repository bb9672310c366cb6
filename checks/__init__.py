"""monagent's built-in checks, written against the public API in :mod:`monagent.api` only."""
