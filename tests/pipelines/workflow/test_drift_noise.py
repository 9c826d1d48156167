"""The noise floors hold for a span as a whole: one factor over every feature, each feature's own scale."""

from __future__ import annotations

import numpy as np

from pipelines.workflow import drift_noise


def test_floors_scale_each_feature_and_hold_for_the_whole_span():
    random = np.random.default_rng(0)
    draws = [
        {"wide": float(w), "narrow": float(n)}
        for w, n in zip(random.uniform(0, 0.4, 40), random.uniform(0, 0.04, 40), strict=True)
    ]
    floors = drift_noise.floors_of(draws)
    assert 9 < floors["wide"] / floors["narrow"] < 11, "each feature keeps its own scale"
    within = [all(draw[f] <= floors[f] for f in floors) for draw in draws]
    assert 0.9 <= np.mean(within) < 1, "about 19 draws in 20 pass every feature at once"
    for feature in floors:
        one_at_a_time = np.quantile([draw[feature] for draw in draws], drift_noise.SPAN_QUANTILE)
        assert floors[feature] >= one_at_a_time, "one floor per feature would pass fewer whole spans"


def test_a_feature_missing_from_a_draw_or_never_moving_gets_a_floor():
    floors = drift_noise.floors_of([{"a": 0.1, "constant": 0.0}, {"a": 0.2, "constant": 0.0}, {"a": 0.3}])
    assert floors["constant"] == 0.0 and 0.2 < floors["a"] <= 0.3
    assert drift_noise.floors_of([]) == {}


def test_samples_carry_the_noise_of_the_span_and_of_the_reference():
    assert drift_noise.sample_size(150, 2000) == 140  # 150 x 2000 / 2150
    assert drift_noise.sample_size(1200, 1200) == 600, "two samples of 1,200: the noise of one of 600"
    assert drift_noise.sample_size(10**6, 10**6) == drift_noise.MAX_SAMPLE_ROWS
