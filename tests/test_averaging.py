"""The weight average: its warm-up, what it leaves alone, and an exact continuation."""

from __future__ import annotations

import pytest
import torch

from relext_ray.training.averaging import WeightAverage


def small_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))


def test_the_first_update_moves_the_average_by_the_warm_up_share():
    model = small_model()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    average = WeightAverage(model, decay=0.999)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    model.train()
    model(torch.randn(4, 3))  # moves the running statistics and the batch counter
    average.update(model)
    share = 1.0 - 2.0 / 11.0  # 1 - min(0.999, (1 + 1) / (10 + 1))
    now = model.state_dict()
    torch.testing.assert_close(average.shadow["0.weight"],
                               start["0.weight"] + share * (now["0.weight"] - start["0.weight"]))
    torch.testing.assert_close(average.shadow["1.running_mean"],
                               start["1.running_mean"]
                               + share * (now["1.running_mean"] - start["1.running_mean"]))
    # an integer counter is not averaged: it keeps the latest value
    assert average.shadow["1.num_batches_tracked"].item() == 1


def test_the_average_converges_to_weights_that_stop_moving_and_leaves_the_model_alone():
    model = small_model()
    average = WeightAverage(model, decay=0.9)
    with torch.no_grad():
        model[0].bias.fill_(3.0)
    for _ in range(200):
        average.update(model)
    copy = average.averaged(model)
    torch.testing.assert_close(copy[0].bias, torch.full((2,), 3.0))
    with torch.no_grad():
        copy[0].bias.fill_(-1.0)
    assert model[0].bias.tolist() == [3.0, 3.0]


def test_a_restored_average_continues_exactly():
    model = small_model()
    straight = WeightAverage(model, decay=0.99)
    first = WeightAverage(model, decay=0.99)
    steps = [torch.randn(2, 3) for _ in range(6)]
    for i, step in enumerate(steps):
        with torch.no_grad():
            model[0].weight.copy_(step)
        straight.update(model)
        if i < 3:
            first.update(model)
        if i == 2:
            resumed = WeightAverage(small_model(), decay=0.5)
            resumed.load_state_dict(first.state_dict())
        if i >= 3:
            resumed.update(model)
    assert resumed.updates == straight.updates == 6
    for k, v in straight.shadow.items():
        assert torch.equal(resumed.shadow[k], v), k


@pytest.mark.parametrize("decay", [0.0, 1.0, 1.5])
def test_a_decay_outside_the_open_unit_interval_is_refused(decay):
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(small_model(), decay)
