"""Turning passages and questions into vectors: the model, its OpenVINO runtime, an evaluation cache."""
