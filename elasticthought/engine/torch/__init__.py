"""Engine `torch`: our Caffe-compatible PyTorch trainer (`facade.TorchEngine` is what the rest of
the service sees). net.py builds a net from a NetParameter out of the layers registered in
layers/ and data/; solver.py and solvers/ train it as Caffe's solvers do; evaluate.py scores a
trained model on the whole test split; deploy.py loads a classifier's deploy net and weights."""
