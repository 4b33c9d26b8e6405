"""The MLflow pyfunc wrapper: ``mlflow.pyfunc.load_model("runs:/<id>/model")`` → a model that
takes canonical records and returns one row per scored entity pair.

Logged as a model from code: MLflow keeps this file with the model and runs it to load the
model (``set_model`` below), so loading unpickles nothing; the weights are the checkpoint
artifact, read with ``weights_only``.
"""

import mlflow.models
import mlflow.pyfunc
import pandas as pd

from relext_ray.corpus.records import sentence_from_dict


class RelationExtractor(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from relext_ray.prediction.predictor import Predictor

        self.checkpoint_dir = context.artifacts["checkpoint"]
        self.predictor = Predictor.load(self.checkpoint_dir)

    def predict(self, context, model_input: pd.DataFrame,
                params: dict[str, float] | None = None) -> pd.DataFrame:
        """``model_input``: a DataFrame (or list of dicts) of canonical records with ``tokens``
        and ``entities`` (``id`` optional); ``params``: optional ``theta``."""
        records = model_input.to_dict("records") if isinstance(model_input, pd.DataFrame) \
            else list(model_input)
        sentences = [sentence_from_dict(r, f"row:{i}") for i, r in enumerate(records)]
        theta = (params or {}).get("theta")
        return self.predictor.score(sentences, theta=theta).table.to_pandas()


mlflow.models.set_model(RelationExtractor())
