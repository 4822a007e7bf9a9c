"""Keeping models fresh: corrections (``feedback``), drift detection and champion/challenger
retraining (``retrain``). The store and registry they use live in ``store``.

Drift, bottom to top: ``stats`` (PSI, chi-square, MMD: pure statistics), ``text_features``
(words, unseen-word rates, embeddings), ``thresholds``, ``reference_data`` and ``reference`` (what
the traffic should look like), ``checks`` (the four checks), ``window`` (which predictions, and the
history), ``plot`` and ``report`` (drift.png, report.md, drift.json), ``webhook``, ``drift``
(``check_drift``) and ``drift_run`` (``run_drift``: what ``fieldtune drift`` does).
"""
