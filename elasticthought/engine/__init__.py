"""Caffe compatibility and the engines. Imports nothing of ours outside engine/.

The engines (`torch/` our PyTorch trainer, `caffe/` real BVLC Caffe through pycaffe) offer one
interface (`interface.Engine`: available, version, train, evaluate, classifier, check_deploy,
layer_types) and are chosen by name through `registry.get_engine(name, config)`, the only
place that tells them apart. `transform` is the one TEST-phase input transform, `preprocess`
turns image bytes into a classifier's input, `deploy` reads a deploy prototxt.

Format modules (all bad input raises `errors.FormatError`):

- `proto.caffe_pb2` -- our caffe.proto (Caffe's names, numbers, defaults); regenerate with
  scripts/gen-proto.
- `prototxt` -- parse_net / parse_solver / read_net / read_solver / to_text (V2 out, upgraded).
- `upgrade` -- V0/V1 nets, legacy inputs and solver_type -> the current format.
- `netstate` -- filter_net(net, phase, stages, level): Caffe's include/exclude rules.
- `rewrite` -- rewrite_for_job: a job's solver + net pointed at its work folder and data.
- `caffemodel` -- .caffemodel / .solverstate / .binaryproto IO, BlobProto <-> numpy.
- `datum`, `db` -- Datum records and LMDB/LevelDB access in Caffe's key order.
- `imageset` -- convert_imageset and compute_image_mean (the CLI commands of the same name).
"""
