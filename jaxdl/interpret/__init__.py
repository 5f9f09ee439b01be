"""Interpretability: attributions (saliency, integrated gradients) and LSTM gate traces."""

from jaxdl.interpret.attributions import integrated_gradients, saliency
from jaxdl.interpret.gates import lstm_gate_trace

__all__ = ["integrated_gradients", "lstm_gate_trace", "saliency"]
