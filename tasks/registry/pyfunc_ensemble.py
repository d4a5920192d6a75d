"""The registered ensemble (MLflow "models from code"): a DataFrame of raw `text` in, P(positive) out.

Its artifact `ensemble.json` holds the stacker's weights and the exact registered version of
each member (`reviewflow-rnn/3`); loading it loads those versions from the registry, so the
ensemble always combines the models it was fitted on, wherever their aliases have moved.
"""

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from models.ensemble import Stacker


class ReviewEnsembleModel(PythonModel):
    def load_context(self, context) -> None:
        spec = json.loads(Path(context.artifacts["ensemble"]).read_text(encoding="utf-8"))
        self.stacker = Stacker.from_dict(spec["stacker"])
        self.members = {
            member: mlflow.pyfunc.load_model(f"models:/{pinned['name']}/{pinned['version']}")
            for member, pinned in spec["members"].items()
        }

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        texts = pd.DataFrame({"text": model_input["text"].fillna("").astype(str)})
        members = {m: np.asarray(model.predict(texts), dtype=np.float64).reshape(-1) for m, model in self.members.items()}
        return self.stacker.predict(members)


mlflow.models.set_model(ReviewEnsembleModel())
