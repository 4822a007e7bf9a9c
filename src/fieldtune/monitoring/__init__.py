"""Keeping models fresh: corrections (``feedback``), drift detection (``reference``, ``drift``) and
champion/challenger retraining (``retrain``). The store and registry they use live in ``store``."""
