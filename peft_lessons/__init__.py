"""peft_lessons: hands-on parameter-efficient fine-tuning in Keras 3, on small pretrained Chinese models."""

import os

# Keras 3 reads its backend once, at import time; the course runs on TensorFlow.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# Quiets most of TensorFlow's C++ logging. TensorFlow 2.20 and later still print a few start-up
# lines (oneDNN, CUDA probing) before they read this variable.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
