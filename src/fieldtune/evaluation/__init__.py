"""Metrics (seqeval, scikit-learn), reports and plots."""
