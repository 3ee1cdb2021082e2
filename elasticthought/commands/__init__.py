"""The `elasticthought` subcommands, one module each (cli.py dispatches): serve, worker, and
Caffe's command-line tools (train, test, time, convert-imageset, compute-image-mean,
upgrade-net)."""
