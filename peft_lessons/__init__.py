"""peft_lessons: hands-on parameter-efficient fine-tuning in Keras 3, on small pretrained Chinese models."""

import os

# Keras 3 reads its backend once, at import time; the course runs on TensorFlow.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# Hide TensorFlow's C++ start-up chatter (CUDA probing, CPU instruction notes) in notebooks.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
