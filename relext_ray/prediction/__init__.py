"""Prediction: the predictor (a checkpoint scoring sentences), the pure parts of batch
prediction (inputs, part files, accounting) and the Ray Data job."""
