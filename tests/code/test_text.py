import numpy as np

from models.text import PAD_ID, UNKNOWN_ID, Vocabulary, tokenize, truncate


def test_tokenize_removes_line_breaks_and_lower_cases():
    assert tokenize("Great<br /><br />MOVIE, isn't it?") == ["great", "movie", "isn't", "it"]


def test_vocabulary_is_fitted_by_frequency_and_reserves_padding_and_unknown():
    vocabulary = Vocabulary.fit(["b a a", "c a b"], size=4)
    assert vocabulary.words == ["a", "b"]
    assert vocabulary.size == 4
    assert vocabulary.encode("a b c").tolist() == [2, 3, UNKNOWN_ID]
    assert PAD_ID not in vocabulary.encode("a b c z")


def test_encoding_never_returns_an_empty_sequence():
    # A fully masked row breaks cuDNN kernels; an all-punctuation review becomes one unknown id.
    assert Vocabulary(["a"]).encode("?!").tolist() == [UNKNOWN_ID]


def test_encoded_ids_are_int32():
    assert Vocabulary(["a"]).encode("a a").dtype == np.int32


def test_vocabulary_round_trips_through_a_file(tmp_path):
    vocabulary = Vocabulary.fit(["x y y z"], size=10)
    vocabulary.save(tmp_path / "v.json")
    assert Vocabulary.load(tmp_path / "v.json").encode("z y q").tolist() == vocabulary.encode("z y q").tolist()


def test_truncate_keeps_the_configured_end():
    ids = np.arange(10, dtype=np.int32)
    assert truncate(ids, 3, "end").tolist() == [7, 8, 9]
    assert truncate(ids, 3, "start").tolist() == [0, 1, 2]
    assert truncate(ids, 20, "end").tolist() == ids.tolist()
