"""Prepared data: the Ray Data prepare pipeline, prepared Parquet → arrays, training subsets,
tensor batches."""
