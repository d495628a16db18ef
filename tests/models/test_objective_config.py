"""``train.objective`` and ``train.init_from``: defaults, and a wrong pairing is one line."""
import pytest
from pydantic import ValidationError

from models.config import TrainConfig
from models.plan import TrainPlan


def test_objective_defaults_to_classify_and_round_trips_through_a_plan():
    assert (TrainConfig().objective, TrainConfig().init_from) == ("classify", None)
    train = TrainConfig(network="lm_transformer", objective="causal_lm", init_from="run-1")
    plan = TrainPlan(train=train, store="s", dataset_version="d@v", ranges={}, input_shape=[32], n_classes=0,
                     run_dir="r")
    assert TrainPlan.from_dict(plan.to_dict()).train == train


@pytest.mark.parametrize("fields, match", [
    ({"objective": "causal_lm"}, r"train\.objective: causal_lm needs train\.network: lm_transformer \(got cnn\)"),
    ({"objective": "next_token"}, r"objective"),
])
def test_a_wrong_objective_is_one_line(fields, match):
    with pytest.raises(ValidationError, match=match) as info:
        TrainConfig(**fields)
    [error] = info.value.errors()
    assert "\n" not in error["msg"]
