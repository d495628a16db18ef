"""Augmentation: a registry of small ops (image, text, tabular) applied to the train split.

>>> from pipeline.augment import names
>>> "rotate" in names() and "mixup" in names()
True
"""
from pipeline.augment.apply import VARIABLES, apply_ops, augment_train
from pipeline.augment.registry import BlockOp, Op, SampleOp, build, build_all, names, register

__all__ = ["VARIABLES", "BlockOp", "Op", "SampleOp", "apply_ops", "augment_train", "build", "build_all",
           "names", "register"]
