"""Image embeddings outside a build: extract them to HDF5 with any artifact, search them, fit
classic heads on them and review outliers (numpy, h5py and scikit-learn; no TensorFlow needed
unless the model given is a Keras one)."""
