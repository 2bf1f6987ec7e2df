"""Fit and speed planning: which model, quant and context a device can run, and how fast."""
