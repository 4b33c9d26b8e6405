"""Corpus records and readers: every format becomes the same ``Sentence`` record."""
