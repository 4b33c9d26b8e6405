"""The model, torch only: encoders, the multi-task relation model, its losses (one objective)
and the one decision rule."""
