"""The evaluator-classifier pyfunc, built from code when MLflow loads a registered evaluator."""

from mlflow.models import set_model

from prodgan.adapters.evaluator_model import EvaluatorPyfunc

set_model(EvaluatorPyfunc())
