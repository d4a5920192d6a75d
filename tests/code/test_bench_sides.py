"""How the bench compares two sides: alternated measurements, medians, ratios and targets."""

from tasks.bench.sides import Figure, alternate, compared


def test_the_sides_alternate_so_a_drift_weighs_on_both():
    order = []
    ours = lambda: order.append("ours") or float(len(order))  # noqa: E731
    baseline = lambda: order.append("baseline") or float(len(order))  # noqa: E731
    ours_samples, baseline_samples = alternate(ours, baseline, 4)
    assert order == ["ours", "baseline", "baseline", "ours", "ours", "baseline", "baseline", "ours"]
    assert ours_samples == [1, 4, 5, 8] and baseline_samples == [2, 3, 6, 7]


def test_a_figure_is_the_ratio_of_the_medians_and_meets_its_target_in_its_direction():
    faster = compared([10, 30, 20], [2, 100, 4], "reviews/s", "higher", ">= 4")
    assert (faster.ours, faster.baseline, faster.ratio, faster.met) == (20, 4, 5, True)
    slower = compared([12, 11], [10, 10], "s", "lower", "<= 1.10")
    assert slower.ratio == 1.15 and slower.met is False
    memory = Figure("MB", 1800.0, None, None, "lower", "<= 2500")
    assert memory.met is True and Figure("GFLOP/s", 3.0, 100.0, 0.03, "higher", "").met is None
