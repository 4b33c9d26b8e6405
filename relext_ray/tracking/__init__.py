"""MLflow: runs, artifacts, model logging and the registry, the trial callback, the pyfunc model."""
