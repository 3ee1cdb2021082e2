"""Packaging for ElasticThought."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def requirements() -> list[str]:
    lines = (HERE / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


setup(
    name="elasticthought",
    version="0.1.0",
    description="Scalable multi-tenant REST service that queues, trains and serves Caffe models",
    long_description=(HERE / "README.md").read_text() if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=find_packages(include=["elasticthought", "elasticthought.*"]),
    package_data={
        "elasticthought.engine.proto": ["*.proto"],
        "elasticthought.web": ["static/*.*", "static/js/*.js", "static/js/pages/*.js"],
    },
    include_package_data=True,
    install_requires=requirements(),
    entry_points={
        "console_scripts": [
            "elasticthought=elasticthought.cli:main",
            "elastic-thought=elasticthought.cli:main",  # the seed's command name
        ]
    },
)
