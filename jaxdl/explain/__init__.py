"""Interpretability: attributions (saliency, integrated gradients) and LSTM gate traces."""

from jaxdl.explain.attributions import integrated_gradients, saliency
from jaxdl.explain.gates import lstm_gate_trace

__all__ = ["integrated_gradients", "lstm_gate_trace", "saliency"]
