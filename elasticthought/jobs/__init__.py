"""Job runners, registered with the queue when this package is imported.

Each runs in a job's child process with its `JobContext`: datafile (download and check an
archive), dataset (split datafiles), training-job (a package: prepare, resume, progress, run)
and classify-job (a classifier over a batch of images). Engines are chosen through
`elasticthought.engine.registry`; blob keys come from `elasticthought.blobs.layout`.
"""

from elasticthought.jobs import classify as _classify
from elasticthought.jobs import training as _training
from elasticthought.jobs.waiting import dataset_dependencies, training_dependencies
from elasticthought.queue.registry import register_runner

register_runner("datafile", "elasticthought.jobs.datafile:run")
register_runner("dataset", "elasticthought.jobs.dataset:run", dependencies=dataset_dependencies)
register_runner(
    "training-job",
    "elasticthought.jobs.training.run:run",
    _training.requirements,
    training_dependencies,
)
register_runner("classify-job", "elasticthought.jobs.classify:run", _classify.requirements)
