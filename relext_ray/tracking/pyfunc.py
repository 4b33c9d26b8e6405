"""The MLflow pyfunc wrapper: ``mlflow.pyfunc.load_model("runs:/<id>/model")`` → a model that
takes canonical records and returns one row per scored entity pair.

Logged as a model from code: MLflow keeps this file with the model and runs it to load the
model (``set_model`` below), so loading unpickles nothing; the weights are the checkpoint
artifact, read with ``weights_only``. The input type (``Record``) is the model's signature:
MLflow checks each record against it, and the MLflow UI shows it.
"""

import mlflow.models
import mlflow.pyfunc
import pandas as pd
import pydantic

from relext_ray.corpus.jsonl import text_record
from relext_ray.corpus.records import sentence_from_dict


class Mention(pydantic.BaseModel):
    start: int
    end: int
    type: str


class GoldRelation(pydantic.BaseModel):
    head: int
    tail: int
    type: str


class Record(pydantic.BaseModel):
    """A canonical record: tokens, entity mentions (token offsets, end exclusive), and
    optionally an id and gold relations (which are scored against). Raw text, for a model with
    an entity tagger: ``text`` alone, or ``tokens`` without ``entities``."""

    tokens: list[str] | None = None
    entities: list[Mention] | None = None
    id: str | None = None
    relations: list[GoldRelation] | None = None
    text: str | None = None


class RelationExtractor(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from relext_ray.prediction.predictor import Predictor

        self.checkpoint_dir = context.artifacts["checkpoint"]
        self.predictor = Predictor.load(self.checkpoint_dir)

    def predict(self, context, model_input: list[Record],
                params: dict[str, float] | None = None) -> pd.DataFrame:
        """``model_input``: canonical records (dicts or a DataFrame of them); ``params``:
        optional ``theta`` (its default is the model's own threshold)."""
        tokenization = self.predictor.tokenization
        sentences = []
        for i, r in enumerate(model_input):
            record = r.model_dump(exclude_none=True)
            if "text" in record and "tokens" not in record:
                sentences += text_record(record, f"row:{i}", tokenization)
            else:
                sentences.append(sentence_from_dict(record, f"row:{i}"))
        theta = (params or {}).get("theta")
        return self.predictor.score(sentences, theta=theta).table.to_pandas()


mlflow.models.set_model(RelationExtractor())
