"""Job runners, registered with the queue when this package is imported.

datafile -> `jobs.datafile:run`; dataset -> `jobs.dataset:run`. REST API part 2 adds
training-job and classify-job here.
"""

from elasticthought.jobs import classify as _classify
from elasticthought.jobs import training as _training
from elasticthought.queue.registry import register_runner

register_runner("datafile", "elasticthought.jobs.datafile:run")
register_runner("dataset", "elasticthought.jobs.dataset:run")
register_runner("training-job", "elasticthought.jobs.training:run", _training.requirements)
register_runner("classify-job", "elasticthought.jobs.classify:run", _classify.requirements)
