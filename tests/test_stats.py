"""The book's one noise rule: paired over seeds, two standard errors."""

from __future__ import annotations

import math
from dataclasses import replace

import pandas as pd
import pytest

from actiondistill.stats import paired_by_seed, paired_difference


def test_a_difference_every_seed_shows_counts_even_when_the_seeds_spread_widely():
    a = {0: 60.0, 1: 70.0, 2: 80.0}
    b = {0: 58.0, 1: 68.5, 2: 77.5}  # each seed 1.5-2.5 below: sd of the settings 10, of the differences 0.5
    diff = paired_difference(a, b)
    assert diff.mean == pytest.approx(2.0) and diff.se == pytest.approx(0.5 / math.sqrt(3))
    assert diff.verdict == "gain" and diff.beyond is True
    assert diff.phrase() == "more than two standard errors (0.6) above zero"
    assert paired_difference(b, a).verdict == "loss"


def test_a_difference_that_changes_sign_over_seeds_is_no_difference():
    diff = paired_difference({0: 3.0, 1: -2.0, 2: 1.0})
    assert diff.verdict == "none" and diff.beyond is False and diff.phrase().startswith("within two standard errors")


def test_only_shared_seeds_are_paired_and_one_seed_gives_no_verdict():
    diff = paired_difference({0: 50.0, 1: 52.0}, {1: 40.0, 2: 41.0})
    assert diff.seeds == 1 and diff.per_seed == {1: 12.0}
    assert diff.verdict == "unknown" and diff.beyond is None and diff.phrase() == "not judged: one seed gives no spread"


def test_a_practical_size_raises_the_bar():
    gains = pd.Series([0.5, 0.6, 0.7], index=[0, 1, 2])
    assert paired_difference(gains).verdict == "gain"
    assert paired_difference(gains, points=1.0).verdict == "none"


def test_paired_by_seed_reads_runs_and_names_what_is_missing():
    runs = pd.DataFrame({"variant": ["a", "a", "b", "b"], "seed": [0, 1, 0, 1], "top1": [50.0, 60.0, 45.0, 56.0]})
    diff = paired_by_seed(runs, "variant", "a", "b")
    assert diff.mean == pytest.approx(4.5) and diff.seeds == 2
    with pytest.raises(ValueError, match="no runs with variant 'c'"):
        paired_by_seed(runs, "variant", "a", "c")


def test_the_sentence_says_the_verdict_in_words():
    assert paired_difference({0: 3.0, 1: -2.0, 2: 1.0}).sentence("PKD's gain") == (
        "PKD's gain (+0.7 points, paired over 3 seed(s)) is within two standard errors (2.9) of zero: no measurable "
        "difference")
    assert paired_difference({0: 2.0}).sentence("it").endswith("is not judged: one seed gives no spread")


def test_described_adds_the_spread_for_sentences_that_name_the_comparison():
    assert paired_difference({0: 3.0, 1: 2.0, 2: 4.0}).described() == (
        "+3.0 points (paired over 3 seed(s), sd 1.0), more than two standard errors (1.2) above zero: a measurable "
        "gain")
    assert paired_difference({0: 2.0}).described() == ("+2.0 points (paired over 1 seed(s)), not judged: one seed "
                                                       "gives no spread")
    with pytest.raises(KeyError):  # a verdict the rule never gives has no words
        replace(paired_difference({0: 2.0}), verdict="maybe").described()


def test_against_noise_judges_without_a_side():
    drop = paired_difference({0: 20.0, 1: 21.0, 2: 22.0})
    assert drop.against_noise() == ("beyond noise (two standard errors of the difference paired over 3 seeds: "
                                    "1.2 points)")
    rise = paired_difference({0: 20.0, 1: 21.0, 2: 22.0}, {0: 40.0, 1: 42.0, 2: 44.0})
    assert rise.against_noise() == drop.against_noise()  # either side reads the same: the sentence says which way
    assert paired_difference({0: 2.0, 1: 0.0, 2: -2.0}).against_noise().startswith("within noise")
    assert paired_difference({0: 2.0}).against_noise() == "with one seed, so no spread to judge it against"


def test_a_metric_the_runs_lack_is_not_judged():
    runs = pd.DataFrame({"init": ["teacher", "student"] * 2, "seed": [0, 0, 1, 1], "zs_top1": [math.nan] * 4})
    diff = paired_by_seed(runs, "init", "teacher", "student", "zs_top1")
    assert diff.verdict == "unknown" and diff.seeds == 0 and math.isnan(diff.mean)
