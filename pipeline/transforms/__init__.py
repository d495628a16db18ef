"""Feature transforms per column group, fitted on the train split with Dask, applied with numpy.

Built-in kinds: ``standard``, ``minmax``, ``robust`` (numeric); ``ordinal``, ``onehot``
(categorical, code 0 = unseen); ``sequence``, ``tfidf``, ``hashing`` (text); ``subword``,
``packed`` (a trained tokenizer); ``pixels`` (images).
"""
from pipeline.transforms.base import Transform, build, kinds, register
from pipeline.transforms.fitted import FeatureTransform

__all__ = ["FeatureTransform", "Transform", "build", "kinds", "register"]
