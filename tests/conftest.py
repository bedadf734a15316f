from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

import pytest  # noqa: E402
import torch  # noqa: E402

import hpo  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One real SQLite MLflow store for the session, so no test writes ./mlflow.db."""
    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    uri = f"sqlite:///{path}"
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    yield uri
    if old is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = old


@pytest.fixture(scope="session")
def tracking_uri(_mlflow_store: str) -> str:
    return _mlflow_store


@pytest.fixture(
    params=["cpu", pytest.param("cuda", marks=pytest.mark.cuda)],
)
def device(request: pytest.FixtureRequest) -> str:
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    return str(request.param)


@pytest.fixture(scope="session")
def boring_data() -> object:
    """The boring task's splits, loaded once per session (they are never modified)."""
    return hpo.testing.boring_task().load_data()
