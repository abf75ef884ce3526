"""bertbench: the BERT paper's pretraining ablations, re-measured in TensorFlow/Keras."""

import os

# Keras 3 must run on TensorFlow (tensorflow-text and tf.data feed it); quiet TF's C++ start-up logs.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
