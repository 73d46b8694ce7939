"""keras_lottery.figures: the log axis of weights remaining."""

from keras_lottery.figures import point_ticks, pyplot, weights_remaining_axis


def test_every_point_of_an_imp_run_gets_a_label():
    percents = [100 * 0.8**r for r in range(6)] + [25.6]
    assert point_ticks(percents) == [100, 80, 64, 51.2, 40.96, 32.768, 25.6]
    fig, ax = pyplot().subplots()
    weights_remaining_axis(ax, percents)
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["100", "80", "64", "51.2", "41", "32.8", "25.6"]
    pyplot().close(fig)


def test_near_duplicates_merge_and_long_series_thin_out():
    assert point_ticks([100, 25.61, 25.6, 0]) == [100, 25.6]
    ticks = point_ticks([100 * 0.8**r for r in range(30)])
    assert len(ticks) <= 14 and ticks[0] == 100
    assert ticks[-1] == round(100 * 0.8**29, 9)  # the sparsest point is always labelled
