"""Document type names and the field names shared across layers (each spelled here only).

Every document has `_id` (made by `store.base.new_id(type, owner)`), `_rev` and `type`; a
user's resources carry `user-id`; jobs carry the queue's bookkeeping fields below.
"""

from __future__ import annotations

from elasticthought.store.base import OWNER_FIELD

# Document types -------------------------------------------------------------------------------
USER = "user"
USERNAME_KEY = "username-key"  # one per username ignoring case: two users never differ only in it
TOKEN = "token"
DATAFILE = "datafile"
DATASET = "dataset"
SOLVER = "solver"
TRAINING_JOB = "training-job"
CLASSIFIER = "classifier"
CLASSIFY_JOB = "classify-job"

# Fields of every document ---------------------------------------------------------------------
ID = "_id"
REV = "_rev"
TYPE = "type"
USER_ID = OWNER_FIELD  # the store's owner field
CREATED_AT = "created-at"

# Fields of job documents (the queue's) --------------------------------------------------------
PROCESSING_STATE = "processing-state"
PROCESSING_LOG = "processing-log"
WORKER_ID = "worker-id"
CLAIM_ID = "claim-id"
LEASE_EXPIRES = "lease-expires"
ATTEMPTS = "attempts"
CANCEL_REQUESTED = "cancel-requested"
STARTED_AT = "started-at"
FINISHED_AT = "finished-at"
ENGINE = "engine"
GPU = "gpu"
CPUS = "cpus"  # CPU cores a job asks for (bounded by its worker's budget)
MAX_CPUS = 1024  # the most cores a job document may ask for

# The kind of data of a datafile, dataset, solver, training job, classifier -------------------
LAYERS_TYPE = "layers_type"
IMAGE_DATA = "IMAGE_DATA"
DATA = "DATA"
LAYERS_TYPES = (IMAGE_DATA, DATA)

#: The classifier and classify-job field naming the default format of classify results.
RESULT_FORMAT = "result-format"

#: Internal fields the API never shows.
INTERNAL = (REV, CLAIM_ID)
