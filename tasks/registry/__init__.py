"""The MLflow model registry: registering versions, the champion gate, aliases."""
