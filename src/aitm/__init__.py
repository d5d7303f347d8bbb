"""AITM: end-to-end conversion probabilities for every step of a funnel (Xi et al., KDD 2021)."""

__version__ = "0.1.0"
