import numpy as np

from models.batching import Sequences, bucketed_batches


def _sequences(lengths):
    return Sequences.from_list([np.arange(1, n + 1, dtype=np.int32) for n in lengths])


def test_pad_right_pads_each_row_to_the_batch_longest():
    batch = _sequences([3, 1, 2]).pad(np.array([0, 1, 2]))
    assert batch.tolist() == [[1, 2, 3], [1, 0, 0], [1, 2, 0]]
    assert batch.dtype == np.int32


def test_training_batches_cover_every_row_once_and_group_similar_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 2000, size=5000)
    batches = bucketed_batches(lengths, 64, np.random.default_rng(1))
    rows = np.concatenate(batches)
    assert sorted(rows.tolist()) == list(range(5000))
    padded = sum(len(b) * lengths[b].max() for b in batches)
    # Bucketing pads far less than padding every batch of a random order to its longest.
    random_order = np.random.default_rng(2).permutation(5000)
    unbucketed = sum(len(b) * lengths[b].max() for b in np.array_split(random_order, len(batches)))
    assert padded < 0.6 * unbucketed


def test_training_batches_are_reshuffled_but_reproducible():
    lengths = np.arange(1000)
    first = bucketed_batches(lengths, 10, np.random.default_rng(5))
    again = bucketed_batches(lengths, 10, np.random.default_rng(5))
    assert all((a == b).all() for a, b in zip(first, again))
    rng = np.random.default_rng(5)
    epoch1, epoch2 = bucketed_batches(lengths, 10, rng), bucketed_batches(lengths, 10, rng)
    assert any((a != b).any() for a, b in zip(epoch1, epoch2))


def test_prediction_batches_take_rows_in_length_order():
    batches = bucketed_batches(np.array([5, 1, 3, 2]), 2)
    assert [b.tolist() for b in batches] == [[1, 3], [2, 0]]


def test_sequences_round_trip_through_a_file(tmp_path):
    sequences = _sequences([4, 2, 7])
    sequences.save(tmp_path / "s.npz")
    loaded = Sequences.load(tmp_path / "s.npz")
    assert loaded.lengths.tolist() == [4, 2, 7]
    assert (loaded.tokens == sequences.tokens).all() and loaded.tokens.dtype == np.int32


def test_batch_count_matches_the_batches_made():
    from models.batching import batch_count

    for rows in (0, 1, 127, 128, 6400, 6401, 22500):
        lengths = np.ones(rows, dtype=int)
        assert batch_count(rows, 128) == len(bucketed_batches(lengths, 128, np.random.default_rng(0)))
        assert batch_count(rows, 128) == len(bucketed_batches(lengths, 128))


def test_one_width_for_all_batches_only_where_it_costs_little_more_than_buckets():
    from models.batching import training_width

    nearly_full = np.array([100] * 900 + [60] * 100)  # reviews cut at 100 words: most are full
    assert training_width(nearly_full, 128) == 100
    spread = np.array([2494] + [200] * 999)  # one long review among short ones: buckets save most
    assert training_width(spread, 128) is None
    assert training_width(np.array([], dtype=np.int64), 128) is None
