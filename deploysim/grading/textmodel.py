"""Small learned text classifiers: hashed word and character n-grams into a logistic regression.

scikit-learn does the work (HashingVectorizer, LogisticRegression). The hashing featuriser is
stateless, so a trained model is only its weights: it ships as a compressed .npz (non-zero weights,
intercept, threshold) beside a JSON card, with no pickle, and loads in any scikit-learn version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np

N_FEATURES = 2**18  # per featuriser (words, characters)


def _vectorizers():
    from sklearn.feature_extraction.text import HashingVectorizer

    common = dict(n_features=N_FEATURES, alternate_sign=False, lowercase=True, norm="l2", binary=True)
    words = HashingVectorizer(analyzer="word", ngram_range=(1, 2), token_pattern=r"(?u)\b\w+\b", **common)
    chars = HashingVectorizer(analyzer="char_wb", ngram_range=(3, 5), **common)
    return words, chars


@cache
def _analysers():
    words, chars = _vectorizers()
    return words.build_analyzer(), chars.build_analyzer()


def features(texts: Sequence[str]):
    """Sparse feature matrix (words then characters) of texts."""
    from scipy.sparse import hstack

    words, chars = _vectorizers()
    texts = [t or "" for t in texts]
    return hstack([words.transform(texts), chars.transform(texts)]).tocsr()


@dataclass
class TextModel:
    weights: np.ndarray  # dense, 2 * N_FEATURES
    intercept: float
    threshold: float = 0.5  # on the probability
    card: dict[str, Any] = field(default_factory=dict)

    def proba(self, texts: Sequence[str]) -> np.ndarray:
        z = features(texts) @ self.weights + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def proba_one(self, text: str) -> float:
        """proba([text])[0] without scikit-learn's per-call overhead (ten times faster for one text)."""
        from sklearn.utils import murmurhash3_32

        z = self.intercept
        for offset, analyse in ((0, _analysers()[0]), (N_FEATURES, _analysers()[1])):
            # FeatureHasher's index: abs(signed murmurhash3) mod N_FEATURES; binary, then l2-normalised
            idx = np.fromiter({abs(murmurhash3_32(t, seed=0)) % N_FEATURES for t in analyse(text or "")}, np.int64)
            if len(idx):
                z += float(self.weights[offset + idx].sum()) / np.sqrt(len(idx))
        return float(1.0 / (1.0 + np.exp(-z)))

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return self.proba(texts) >= self.threshold

    def save(self, path: Path | str) -> Path:
        """Writes <path>.npz (weights) and <path>.json (card, threshold)."""
        path = Path(path)
        nz = np.flatnonzero(self.weights)
        np.savez_compressed(
            path.with_suffix(".npz"),
            index=nz.astype(np.int32),
            value=self.weights[nz].astype(np.float32),
            intercept=np.array([self.intercept]),
        )
        card = self.card | {"threshold": self.threshold, "n_features": N_FEATURES}
        path.with_suffix(".json").write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return path.with_suffix(".npz")

    @classmethod
    def load(cls, path: Path | str) -> TextModel:
        path = Path(path)
        card = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        if card.get("n_features", N_FEATURES) != N_FEATURES:
            raise ValueError(
                f"{path.name}: trained with {card['n_features']} hashed features, this code uses {N_FEATURES}"
            )
        with np.load(path.with_suffix(".npz")) as z:
            w = np.zeros(2 * N_FEATURES, dtype=np.float64)
            w[z["index"]] = z["value"]
            intercept = float(z["intercept"][0])
        return cls(w, intercept, float(card.get("threshold", 0.5)), card)


def train(
    texts: Sequence[str],
    labels: Sequence[bool],
    weights: Sequence[float] | None = None,
    c: float = 4.0,
    card: dict[str, Any] | None = None,
) -> TextModel:
    """Fit a class-balanced L2 logistic regression on hashed n-grams."""
    from sklearn.linear_model import LogisticRegression

    x = features(texts)
    y = np.asarray(labels, dtype=bool)
    lr = LogisticRegression(C=c, class_weight="balanced", max_iter=2000, solver="liblinear", random_state=0)
    lr.fit(x, y, sample_weight=None if weights is None else np.asarray(weights, dtype=float))
    return TextModel(lr.coef_[0].astype(np.float64), float(lr.intercept_[0]), 0.5, dict(card or {}))


class Lazy:
    """A packaged model loaded on first use (import stays cheap)."""

    def __init__(self, path: Path):
        self.path = path

    @cached_property
    def model(self) -> TextModel:
        return TextModel.load(self.path)
