"""The services of the current app (app.py's accessors), by the short names handlers use."""

from __future__ import annotations

import threading
from typing import Any

from elasticthought.api.app import get_blobs, get_config, get_services, get_store

store = get_store
blobs = get_blobs
config = get_config

_inference_lock = threading.Lock()


def inference() -> Any:
    """This process's warm inference service (`queue.inference.InferenceService`, started on
    first use), or None when warm classification is off (`--classifier-cache-mb 0`)."""
    services = get_services()
    if services.config.classifier_cache_mb <= 0:
        return None
    with _inference_lock:
        if services.inference is None:
            from elasticthought.queue.inference import CLASSIFIER_HANDLER, InferenceService

            services.inference = InferenceService(services.config, CLASSIFIER_HANDLER)
        return services.inference
