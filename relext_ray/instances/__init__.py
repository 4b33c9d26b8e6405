"""Sentence → relation instances → features: pairs (modes, type filter), BIO tags, positions,
vocabularies. Pure functions: no Ray, no MLflow, no torch."""
