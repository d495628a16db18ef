"""The tune section of the config: the search space syntax, what may vary, one-line errors."""
import pytest

from pipeline.config import JobConfig, parse_config
from pipeline.errors import UserError
from pipeline.tune.space import Choice, IntRange, LogUniform, Uniform, merge, parse_space, suggest
from pipeline.tune.search import apply


def test_each_distribution_parses():
    space = parse_space({"train.learning_rate": {"log_uniform": [1e-4, 1e-2]}, "train.network": {"choice": ["cnn", "mlp"]},
                         "train.batch_size": {"choice": [32, 64, 128]}, "train.epochs": {"int": [1, 3]},
                         "train.learning_rate_2": {"uniform": [0, 1]}})
    assert space["train.learning_rate"] == LogUniform(1e-4, 1e-2)
    assert space["train.network"] == Choice(("cnn", "mlp"))
    assert space["train.epochs"] == IntRange(1, 3)
    assert space["train.learning_rate_2"] == Uniform(0.0, 1.0)


def test_the_issue_example_validates_and_a_point_applies():
    cfg = parse_config({"tune": {"space": {
        "train.learning_rate": {"log_uniform": [1e-4, 1e-2]}, "train.network": {"choice": ["cnn", "mlp"]},
        "train.batch_size": {"choice": [32, 64, 128]},
        "train.compression": {"choice": ["fp16", "topk:0.01", "powersgd:4"]}}}})
    point = {"train.learning_rate": 3e-3, "train.network": "mlp", "train.batch_size": 32,
             "train.compression": "topk:0.01"}
    tuned = apply(cfg, point)
    assert (tuned.train.learning_rate, tuned.train.network, tuned.train.batch_size, tuned.train.compression) == \
        (3e-3, "mlp", 32, "topk:0.01")
    assert tuned.data_part() == cfg.data_part()          # training-side keys: the same prepared version


def test_data_side_keys_vary_with_prepare_true():
    cfg = parse_config({"tune": {"prepare": True, "space": {"augment.copies": {"int": [0, 3]}}}})
    assert apply(cfg, {"augment.copies": 3}).augment.copies == 3
    assert apply(cfg, {"augment.copies": 3}).data_part() != cfg.data_part()


class _Fixed:
    """An object with Optuna's suggest API that picks each range's low end and each choice's last value."""

    def suggest_float(self, name, low, high, log=False):
        return low

    def suggest_int(self, name, low, high):
        return low

    def suggest_categorical(self, name, choices):
        return choices[-1]


def test_suggest_draws_one_point_per_key():
    space = parse_space({"train.learning_rate": {"log_uniform": [1e-4, 1e-2]}, "train.network": {"choice": ["cnn", "mlp"]}})
    assert suggest(space, _Fixed()) == {"train.learning_rate": 1e-4, "train.network": "mlp"}


def test_merge_sets_a_nested_key_and_keeps_the_rest():
    assert merge({"clean": {"outliers": {"method": "none", "z": 4}}}, ("clean", "outliers", "method"), "iqr") == \
        {"clean": {"outliers": {"method": "iqr", "z": 4}}}


def test_the_default_config_has_a_default_space():
    assert set(JobConfig().tune.space) == {"train.learning_rate", "train.batch_size", "train.network"}


@pytest.mark.parametrize("tune, message", [
    # a data-side key without tune.prepare
    ({"space": {"augment.copies": {"int": [0, 3]}}},
     r"^c\.yaml: tune\.space: augment\.copies changes the prepared data; set tune\.prepare: true"),
    # cluster, serve and tune keys never vary
    ({"space": {"cluster.workers": {"int": [1, 2]}}}, r"tune\.space: cluster\.workers: only train\.\* keys"),
    # an unknown distribution lists the known ones
    ({"space": {"train.learning_rate": {"normal": [0, 1]}}},
     r"train\.learning_rate: unknown distribution 'normal'; choose one of uniform, log_uniform, int, choice$"),
    # two distributions for one key
    ({"space": {"train.learning_rate": {"uniform": [0, 1], "int": [0, 1]}}}, r"expected one of \{log_uniform"),
    # a log scale needs low > 0
    ({"space": {"train.learning_rate": {"log_uniform": [0, 1e-2]}}}, r"log_uniform: low 0\.0 must be > 0"),
    # low above high
    ({"space": {"train.learning_rate": {"uniform": [0.1, 0.01]}}}, r"low 0\.1 must be below high 0\.01; swap them"),
    # int takes integers
    ({"space": {"train.epochs": {"int": [1, 2.5]}}}, r"int takes \[low, high\], two integers \(got \[1, 2\.5\]\)"),
    # a range needs two ends
    ({"space": {"train.learning_rate": {"uniform": [0.1]}}}, r"uniform takes \[low, high\], two numbers"),
    # an empty choice
    ({"space": {"train.network": {"choice": []}}}, r"choice takes a non-empty list of values"),
    # a repeated choice
    ({"space": {"train.network": {"choice": ["cnn", "cnn"]}}}, r"choice lists a value twice"),
    # a choice the field refuses names the field's rule
    ({"space": {"train.network": {"choice": ["cnn", "lenet"]}}},
     r"^c\.yaml: tune\.space: train\.network: 'lenet' is not a valid value \(train\.network: Input should be 'cnn'"),
    # a range end the field refuses
    ({"space": {"train.batch_size": {"int": [0, 64]}}}, r"tune\.space: train\.batch_size: 0 is not a valid value"),
    # a key the config does not have
    ({"space": {"train.lr": {"uniform": [0.1, 0.2]}}}, r"tune\.space: train\.lr: no such key in the config; see `dcpipe config`"),
    # not a dotted path
    ({"space": {"train.": {"uniform": [0.1, 0.2]}}}, r"key 'train\.' is not a dotted config path"),
    # an empty space
    ({"space": {}}, r"^c\.yaml: tune\.space: is empty; give at least one key"),
    # a sampler that does not exist lists the ones that do
    ({"sampler": "bohb"}, r"^c\.yaml: tune\.sampler: Input should be 'tpe', 'random', 'cmaes' or 'nsga2' \(got 'bohb'\)"),
    # a pruner that does not exist
    ({"pruner": "median"}, r"tune\.pruner: Input should be 'hyperband', 'successive_halving' or 'none'"),
    # trials must be positive
    ({"trials": 0}, r"tune\.trials: Input should be greater than 0"),
    # an unknown key in the section
    ({"trails": 3}, r"unknown key 'tune\.trails'; remove it or check its spelling"),
])
def test_tune_section_errors_are_one_line_naming_the_key(tune, message):
    with pytest.raises(UserError, match=message) as err:
        parse_config({"tune": tune}, origin="c.yaml")
    assert "\n" not in str(err.value)


def test_a_language_model_config_round_trips_and_the_default_space_is_refused_when_a_study_starts(tmp_path):
    """The default space tries train.network: cnn; a causal_lm config stays valid through overrides
    (a to_dict round trip), and `dcpipe tune` says in one line why that space does not fit it."""
    from pipeline.tune.search import Driver
    from pipeline.workdir import Workdir

    cfg = parse_config({"train": {"network": "lm_transformer", "objective": "causal_lm"}}, origin="lm.yaml")
    again = JobConfig.model_validate(cfg.to_dict())
    assert again.train.objective == "causal_lm"
    with pytest.raises(UserError, match=r"tune\.space: train\.network: 'cnn' is not a valid value") as info:
        Driver(again, Workdir.open(tmp_path), "s", 1)
    assert "\n" not in str(info.value)
