"""The single-layer and multi-layer LSTM baselines of the field's tables."""
