"""repro: Git-native reproducibility for data and machine learning."""

__version__ = "0.1.0"
