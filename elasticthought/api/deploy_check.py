"""Building a classifier's deploy net with its model, in a bounded child process: a huge net
(say InnerProduct `num_output: 1000000`) costs the child memory up to the job memory limit and
fails there, never in the server. `check_deploy_bounded` is what the API calls."""

from __future__ import annotations

from typing import Any

from elasticthought import limits
from elasticthought.api.errors import ApiError
from elasticthought.bounded import BoundedBusy, BoundedError, BoundedLimitError, run_bounded
from elasticthought.config import Config


def check_in_child(spec: str, blobs_url: str, model_key: str, config: Config) -> dict[str, Any]:
    """(In the child) build the deploy net with the model; what the API needs to know of it."""
    from elasticthought.blobs import open_blobs
    from elasticthought.engine.registry import CHECKING_ENGINE, get_engine

    model = open_blobs(blobs_url, create=False).get(model_key)
    deploy = get_engine(CHECKING_ENGINE, config).check_deploy(spec, model)
    return {
        "input": deploy.input,
        "input_shape": [int(n) for n in deploy.input_shape],
        "output": deploy.output,
        "outputs": int(deploy.outputs),
        "applies_softmax": bool(deploy.applies_softmax),
    }


def check_deploy_bounded(spec: str, model_key: str, config: Config) -> dict[str, Any]:
    """`check_in_child` under the job memory limit and `limits.VALIDATION_TIMEOUT`; engine
    errors (`FormatError`, `DeployError`) come back as raised, limits as 422, busy as 503."""
    memory = limits.job_memory_limit(config.job_memory_limit, config.workers)
    try:
        return run_bounded(
            "elasticthought.api.deploy_check:check_in_child",
            (spec, config.blobs_url, model_key, config),
            memory,
            limits.VALIDATION_TIMEOUT,
        )
    except BoundedLimitError as exc:
        raise ApiError(
            422, f"the deploy net cannot be built with this model: {exc} (--job-memory-limit)"
        ) from None
    except BoundedBusy as exc:
        raise ApiError(503, str(exc)) from None
    except BoundedError as exc:
        raise ApiError(422, f"the deploy net cannot be built with this model: {exc}") from None
