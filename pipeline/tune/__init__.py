"""``dcpipe tune``: AutoML with Optuna on the Dask cluster (docs/tuning.md).

``space`` parses the config's ``tune.space``; ``study`` owns the study's journal file, sampler,
pruner and restarts; ``trials`` runs one trial (a Dask task, a real run); ``search`` drives the
study; ``report`` writes trials.csv, best.yaml and report.html. Only ``space`` is imported by
``pipeline.config`` (it needs no Optuna).
"""
