"""Engine selection of classify jobs and the engine versions jobs record."""

from __future__ import annotations

import types

import torch

import elasticthought
from elasticthought.engine.registry import engine_version
from elasticthought.jobs import classify
from elasticthought.queue.capabilities import missing
from elasticthought.queue.registry import runner_for


def test_classify_job_asks_for_its_engine():
    import elasticthought.jobs  # noqa: F401 - registers the runners

    runner = runner_for("classify-job")
    assert runner is not None and runner.requirements is classify.requirements
    caffe = runner.needs({"engine": "caffe", "gpu": False})
    assert caffe == {"engine": "caffe", "gpu": 0}
    assert missing({"engines": ["torch"], "gpus": []}, caffe) == "engine 'caffe'"
    assert missing({"engines": ["caffe", "torch"], "gpus": []}, caffe) is None
    assert runner.needs({"engine": "torch"})["engine"] == "torch"
    assert runner.needs({})["engine"] is None  # older jobs: torch, which every worker runs


def test_engine_versions(caffe_runtime):
    config = types.SimpleNamespace(
        caffe_python=caffe_runtime["python"], caffe_prefix=caffe_runtime["prefix"]
    )
    assert engine_version("torch", config) == (
        f"torch-engine {elasticthought.__version__} (PyTorch {torch.__version__})"
    )
    assert engine_version("caffe", config) == f"BVLC Caffe {caffe_runtime['version']}"
    missing_caffe = types.SimpleNamespace(caffe_python="/nonexistent/python3", caffe_prefix="/x")
    assert engine_version("caffe", missing_caffe) is None
