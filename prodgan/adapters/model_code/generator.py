"""The generator pyfunc, built from code when MLflow loads a registered generator."""

from mlflow.models import set_model

from prodgan.adapters.serving import GeneratorPyfunc

set_model(GeneratorPyfunc())
