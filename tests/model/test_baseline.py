"""The TF-IDF baseline: fits and predicts on tiny texts, reads the project's words, saves as plain arrays."""

import json
import zipfile

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from models.baseline import ARRAYS_FILE, SETTINGS_FILE, BaselineClassifier, BaselineSettings
from models.classifiers import is_baseline, load_classifier
from models.text import tokenize

POSITIVE = ["a wonderful film, I loved it", "wonderful acting and a great story", "great fun, loved every minute",
            "truly great, wonderful cast", "I loved this great movie"]
NEGATIVE = ["an awful film, I hated it", "awful acting and a boring story", "boring and dull, hated every minute",
            "truly awful, boring cast", "I hated this dull movie"]
TEXTS, LABELS = POSITIVE + NEGATIVE, np.array([1] * 5 + [0] * 5)
SMALL = BaselineSettings(ngram_range=(1, 2), min_df=1, C=10.0, nb_weighting=False)


@pytest.fixture(scope="module")
def fitted() -> BaselineClassifier:
    return BaselineClassifier.fit(TEXTS, LABELS, SMALL)


def test_it_learns_plain_cases_and_scores_new_text_by_its_words(fitted):
    probabilities = fitted.predict(TEXTS)
    assert ((probabilities >= 0.5) == LABELS).all()
    new = fitted.predict(["wonderful, loved it", "awful and boring", "nothing known here"])
    assert new[0] > 0.5 > new[1] and 0 < new[2] < 1
    assert fitted.predict([]).shape == (0,)


def test_it_reads_the_project_tokenizer_s_words_unigrams_and_bigrams(fitted):
    model = BaselineClassifier.fit(["Don't<br />miss it", "don't bother"], np.array([1, 0]), SMALL)
    assert tokenize("Don't<br />miss it") == ["don't", "miss", "it"]
    assert set(model.terms) == {"don't", "miss", "it", "don't miss", "miss it", "bother", "don't bother"}


def test_its_scores_are_scikit_learn_s_tfidf_and_logistic_regression(fitted):
    vectorizer = TfidfVectorizer(tokenizer=tokenize, lowercase=False, token_pattern=None, ngram_range=(1, 2), sublinear_tf=True)
    features = vectorizer.fit_transform(TEXTS)
    regression = LogisticRegression(C=10.0, max_iter=1000).fit(features, LABELS)
    others = TEXTS + ["loved loved loved it", "an unseen review"]
    expected = regression.predict_proba(vectorizer.transform(others))[:, 1]
    assert np.abs(fitted.predict(others) - expected).max() < 1e-12


def test_naive_bayes_weighting_is_the_regression_on_features_scaled_by_log_count_ratios():
    settings = BaselineSettings(ngram_range=(1, 2), min_df=1, C=10.0, nb_weighting=True)
    weighted = BaselineClassifier.fit(TEXTS, LABELS, settings)
    vectorizer = TfidfVectorizer(tokenizer=tokenize, lowercase=False, token_pattern=None, ngram_range=(1, 2), sublinear_tf=True)
    features = vectorizer.fit_transform(TEXTS).toarray()
    present = features > 0
    positive, negative = present[LABELS == 1].sum(axis=0) + 1.0, present[LABELS == 0].sum(axis=0) + 1.0
    ratios = np.log((positive / positive.sum()) / (negative / negative.sum()))
    regression = LogisticRegression(C=10.0, max_iter=1000).fit(features * ratios, LABELS)
    others = TEXTS + ["loved loved loved it", "an unseen review"]
    expected = regression.predict_proba(vectorizer.transform(others).toarray() * ratios)[:, 1]
    assert np.abs(weighted.predict(others) - expected).max() < 1e-9
    assert ratios[vectorizer.vocabulary_["wonderful"]] > 0 > ratios[vectorizer.vocabulary_["awful"]]


def test_save_and_load_as_arrays_give_identical_probabilities_and_no_pickle(fitted, tmp_path):
    fitted.save(tmp_path / "baseline-tfidf")
    loaded = load_classifier(tmp_path / "baseline-tfidf")
    assert isinstance(loaded, BaselineClassifier) and is_baseline(tmp_path / "baseline-tfidf")
    texts = TEXTS + ["a great but boring film", ""]
    assert np.array_equal(loaded.predict(texts), fitted.predict(texts))
    assert loaded.settings == fitted.settings and loaded.terms == fitted.terms

    files = sorted(p.name for p in (tmp_path / "baseline-tfidf").iterdir())
    assert files == sorted([SETTINGS_FILE, ARRAYS_FILE])
    json.loads((tmp_path / "baseline-tfidf" / SETTINGS_FILE).read_text())  # plain JSON
    with zipfile.ZipFile(tmp_path / "baseline-tfidf" / ARRAYS_FILE) as archive:
        assert sorted(archive.namelist()) == ["coef.npy", "idf.npy", "intercept.npy"]
    with np.load(tmp_path / "baseline-tfidf" / ARRAYS_FILE, allow_pickle=False) as arrays:
        assert all(arrays[k].dtype == np.float64 for k in arrays.files)  # numbers only: nothing that needs pickle


def test_settings_are_checked(fitted):
    with pytest.raises(ValueError, match="do not match"):
        BaselineClassifier(["a", "b"], np.ones(2), np.ones(3), 0.0, SMALL)
