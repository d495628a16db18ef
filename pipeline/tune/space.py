"""The search space of ``dcpipe tune``: the ``tune.space`` mapping of the YAML config.

Each key names a config field by its dotted path; each value is one distribution::

    tune:
      space:
        train.learning_rate: {log_uniform: [1.0e-4, 1.0e-2]}
        train.network: {choice: [cnn, mlp]}
        train.batch_size: {choice: [32, 64, 128]}
        augment.copies: {int: [0, 3]}          # data side: needs tune.prepare: true

Pure parsing and arithmetic; no Optuna here (``suggest`` takes any object with Optuna's
``suggest_float`` / ``suggest_int`` / ``suggest_categorical``).

>>> space = parse_space({"train.learning_rate": {"log_uniform": [1e-4, 1e-2]}})
>>> space["train.learning_rate"]
LogUniform(low=0.0001, high=0.01)
"""
from __future__ import annotations

from dataclasses import dataclass

#: sections whose fields change the stored dataset (``JobConfig.data_part``): they vary only with tune.prepare
DATA_SECTIONS = ("seed", "dataset", "source", "schema", "clean", "split", "features", "augment", "store")
TRAIN_SECTIONS = ("train",)
EXAMPLE = "e.g. train.learning_rate: {log_uniform: [1.0e-4, 1.0e-2]}"


@dataclass(frozen=True)
class _Range:
    low: float
    high: float

    def bounds(self) -> list:
        return [self.low, self.high]


class Uniform(_Range):
    def suggest(self, trial, name: str):
        return trial.suggest_float(name, self.low, self.high)


class LogUniform(_Range):
    def suggest(self, trial, name: str):
        return trial.suggest_float(name, self.low, self.high, log=True)


class IntRange(_Range):
    def suggest(self, trial, name: str):
        return trial.suggest_int(name, self.low, self.high)


@dataclass(frozen=True)
class Choice:
    values: tuple

    def suggest(self, trial, name: str):
        return trial.suggest_categorical(name, list(self.values))

    def bounds(self) -> list:
        return list(self.values)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _pair(kind: str, value, ints: bool) -> tuple:
    """``[low, high]`` of a range distribution, checked."""
    want = "integers" if ints else "numbers"
    if not (isinstance(value, list) and len(value) == 2 and all(_number(v) for v in value)
            and (not ints or all(float(v).is_integer() for v in value))):
        raise ValueError(f"{kind} takes [low, high], two {want} (got {value!r}); e.g. {{{kind}: "
                         f"{'[0, 3]' if ints else '[1.0e-4, 1.0e-2]'}}}")
    low, high = (int(v) for v in value) if ints else (float(v) for v in value)
    if low > high or (low == high and not ints):
        raise ValueError(f"{kind}: low {low} must be below high {high}; swap them")
    if kind == "log_uniform" and low <= 0:
        raise ValueError(f"log_uniform: low {low} must be > 0 (a log scale has no 0); e.g. [1.0e-4, 1.0e-2]")
    return low, high


def _choice(value) -> Choice:
    if not isinstance(value, list) or not value:
        raise ValueError(f"choice takes a non-empty list of values (got {value!r}); e.g. {{choice: [cnn, mlp]}}")
    bad = next((v for v in value if not (v is None or isinstance(v, (bool, int, float, str)))), None)
    if bad is not None:
        raise ValueError(f"choice values must be strings, numbers, booleans or null (got {bad!r})")
    if len({repr(v) for v in value}) != len(value):
        raise ValueError(f"choice lists a value twice ({value!r}); list each once")
    return Choice(tuple(value))


KINDS = {"uniform": lambda v: Uniform(*_pair("uniform", v, False)),
         "log_uniform": lambda v: LogUniform(*_pair("log_uniform", v, False)),
         "int": lambda v: IntRange(*_pair("int", v, True)),
         "choice": _choice}


def parse_distribution(spec) -> _Range | Choice:
    """One value of ``tune.space``: a mapping with exactly one of the ``KINDS``."""
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ValueError(f"expected one of {{log_uniform|uniform|int|choice: ...}} (got {spec!r}); {EXAMPLE}")
    (kind, value), = spec.items()
    if kind not in KINDS:
        raise ValueError(f"unknown distribution {kind!r}; choose one of {', '.join(KINDS)}")
    return KINDS[kind](value)


def check_key(key: str, prepare: bool) -> tuple[str, ...]:
    """``key`` as a field path, allowed to vary: training-side, or data-side with ``tune.prepare``."""
    path = tuple(key.split(".")) if isinstance(key, str) else ()
    if not path or not all(path):
        raise ValueError(f"key {key!r} is not a dotted config path; {EXAMPLE}")
    section = path[0]
    if section in DATA_SECTIONS:
        if not prepare:
            raise ValueError(f"{key} changes the prepared data; set tune.prepare: true to vary it "
                             "(each distinct data config is prepared once), or vary train.* keys only")
    elif section not in TRAIN_SECTIONS:
        raise ValueError(f"{key}: only train.* keys (and with tune.prepare: true the data sections "
                         f"{', '.join(DATA_SECTIONS)}) may vary")
    return path


def nested(path: tuple[str, ...], value) -> dict:
    """``{"a": {"b": value}}`` for ``("a", "b")``."""
    for part in reversed(path):
        value = {part: value}
    return value


def merge(base: dict, path: tuple[str, ...], value) -> dict:
    """A copy of the config mapping ``base`` with the field at ``path`` set to ``value``.

    >>> merge({"train": {"epochs": 1, "np": 2}}, ("train", "epochs"), 3)
    {'train': {'epochs': 3, 'np': 2}}
    """
    if len(path) == 1:
        return {**base, path[0]: value}
    inner = base.get(path[0])
    return {**base, path[0]: merge(inner if isinstance(inner, dict) else {}, path[1:], value)}


def parse_space(space: dict, prepare: bool = False) -> dict:
    """``tune.space`` as ``{key: distribution}``; ``ValueError`` naming the key otherwise."""
    if not isinstance(space, dict):
        raise ValueError(f"tune.space must map config keys to distributions (got {space!r}); {EXAMPLE}")
    out = {}
    for key, spec in space.items():
        check_key(key, prepare)
        try:
            out[key] = parse_distribution(spec)
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
    return out


def suggest(space: dict, trial) -> dict:
    """One point of ``space`` (``parse_space``'s result), drawn by an Optuna ``trial``."""
    return {key: dist.suggest(trial, key) for key, dist in space.items()}


def check_values(cfg, space: dict) -> None:
    """Every bound and choice of ``space`` must be a valid value of its key in ``cfg`` (a
    ``JobConfig``): ``train.network: {choice: [cnn, lenet]}`` fails here, not in trial 7."""
    from pydantic import ValidationError

    base = {k: v for k, v in cfg.to_dict().items() if k != "tune"}
    for key, dist in parse_space(space, cfg.tune.prepare).items():
        for value in dist.bounds():
            try:
                type(cfg).model_validate(merge(base, tuple(key.split(".")), value))
            except ValidationError as exc:
                err = exc.errors()[0]
                if err["type"] == "extra_forbidden":
                    raise ValueError(f"tune.space: {key}: no such key in the config; see `dcpipe config` "
                                     "for the keys") from None
                where = ".".join(str(p) for p in err["loc"])
                why = err["msg"].removeprefix("Value error, ")
                raise ValueError(f"tune.space: {key}: {value!r} is not a valid value ({where}: {why}); "
                                 "fix the distribution or the key") from None
