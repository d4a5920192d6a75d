"""The registered model (MLflow "models from code"): a DataFrame of raw `text` in, P(positive) out.

MLflow copies this file into each logged model and runs it on load; the `models` package
travels with it as code, and the classifier folder (a recurrent model: Keras model, vocabulary,
length settings; the baseline: n-gram terms and weights as JSON and arrays) as an artifact, so
a registered version scores raw text exactly as evaluation did.
"""

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from models.classifiers import load_classifier


class ReviewSentimentModel(PythonModel):
    def load_context(self, context) -> None:
        self.classifier = load_classifier(Path(context.artifacts["classifier"]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        texts = model_input["text"].fillna("").astype(str).tolist()
        return self.classifier.predict(texts)


mlflow.models.set_model(ReviewSentimentModel())
