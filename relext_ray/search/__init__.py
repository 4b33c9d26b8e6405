"""The search: Ray Tune + Optuna (TPE) + ASHA over any config values; the space, the trainable,
the tuner, exact resume after a driver death, the ranking of results and the job folder."""
