"""Training: the fit loop, evaluation and metrics, the checkpoint format, cross-validation.
Neither Ray nor MLflow: the search and tracking call in from above."""
