"""ElasticThought: a multi-tenant REST service that queues, trains and serves Caffe models."""

__version__ = "0.1.0"
