"""Text similarity for ICU's per-sample forgetting check: sentence BLEU and embedding cosine.

ICU (spec 3.3) marks a forget item as forgotten when its generation drifts from the reference:
NLTK ``sentence_bleu([word_tokenize(ref.lower())], word_tokenize(cand.lower()))`` with uniform
4-gram weights and **no smoothing**, plus BERTScore F1, which we replace by the cosine of
sentence embeddings (:mod:`obliviate.models.embedding`). NLTK is not a dependency of this module:
the tokenizer below reimplements NLTK's rules with plain regexes and the BLEU is recomputed
exactly, so the check runs wherever obliviate runs.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

__all__ = ["bleu_from_tokens", "cosine_similarity", "sentence_bleu", "word_tokens"]

# --- tokenizer -------------------------------------------------------------------------------
# A port of NLTK's ``NLTKWordTokenizer`` (the improved Penn Treebank tokenizer that
# ``word_tokenize`` runs per sentence). Only the sentence split that ``word_tokenize`` does first
# with the Punkt model is approximated (``_split_sentences``): Punkt's data files are not on PyPI.

_STARTING_QUOTES = [
    (re.compile(r"([«“‘„]|[`]+)"), r" \1 "),
    (re.compile(r'^"'), r"``"),
    (re.compile(r"(``)"), r" \1 "),
    (re.compile(r"([ \(\[{<])(\"|\'{2})"), r"\1 `` "),
    (re.compile(r"(?i)(?<!\w)(\')(?!(?:re|ve|ll|m|t|s|d|n)\b)(?=\w)"), r"\1 "),
]
_PUNCTUATION = [
    (re.compile(r"([^\.])(\.)([\]\)}>\"'»”’ ]*)\s*$"), r"\1 \2 \3 "),
    (re.compile(r"([:,])([^\d])"), r" \1 \2"),
    (re.compile(r"([:,])$"), r" \1 "),
    (re.compile(r"\.{2,}"), r" \g<0> "),
    (re.compile(r"[;@#$%&]"), r" \g<0> "),
    (re.compile(r"[\u2012-\u2015]"), r" \g<0> "),
    (re.compile(r"([^\.])(\.)([\]\)}>\"']*)\s*$"), r"\1 \2\3 "),
    (re.compile(r"[?!]"), r" \g<0> "),
    (re.compile(r"([^'])' "), r"\1 ' "),
    (re.compile(r"[*]"), r" \g<0> "),
]
_PARENS_BRACKETS = (re.compile(r"[\]\[\(\)\{\}\<\>]"), r" \g<0> ")
_DOUBLE_DASHES = (re.compile(r"--"), r" -- ")
_ENDING_QUOTES = [
    (re.compile(r"([»”’])"), r" \1 "),
    (re.compile(r"''"), " '' "),
    (re.compile(r'"'), " '' "),
    (re.compile(r"\s+"), " "),
    (re.compile(r"([^' ])('[sS]|'[mM]|'[dD]|') "), r"\1 \2 "),
    (re.compile(r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) "), r"\1 \2 "),
]
_CONTRACTIONS = [
    re.compile(p)
    for p in (
        r"(?i)\b(can)(not)\b",
        r"(?i)\b(d)('ye)\b",
        r"(?i)\b(gim)(me)\b",
        r"(?i)\b(gon)(na)\b",
        r"(?i)\b(got)(ta)\b",
        r"(?i)\b(lem)(me)\b",
        r"(?i)\b(more)('n)\b",
        r"(?i)\b(wan)(na)(?=\s)",
        r"(?i) ('t)(is)\b",
        r"(?i) ('t)(was)\b",
    )
]

# A sentence ends after a word ending in "." (closing quotes/brackets may follow) and whitespace.
_SENTENCE_END = re.compile(r"(?<=\S\.)(?<!\.\.)([\]\)}>\"'»”’]*)\s+")
# Punkt knows these as abbreviations and does not end a sentence after them.
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st jr sr vs etc inc ltd co corp no fig vol al approx dept est "
    "jan feb mar apr jun jul aug sep sept oct nov dec".split()
)


def _is_abbreviation(text: str, end: int) -> bool:
    """Whether the word ending at ``text[end-1] == "."`` is one Punkt would not break after."""
    start = end - 1
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    word = text[start : end - 1].lstrip("\"'([{<`“‘«")
    # "e.g." / "u.s." (an inner period) and single letters ("j. smith") are initials/abbreviations.
    return word.lower() in _ABBREVIATIONS or "." in word or len(word) == 1


def _split_sentences(text: str) -> list[str]:
    """Approximate Punkt: split after a word-final period unless the word is an abbreviation."""
    sentences, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        if _is_abbreviation(text, match.start()):
            continue
        sentences.append(text[start : match.end(1)])
        start = match.end()
    sentences.append(text[start:])
    return [s for s in sentences if s.strip()]


def _treebank_tokens(sentence: str) -> list[str]:
    """NLTK's ``NLTKWordTokenizer.tokenize`` rule for rule: quotes, punctuation, contractions."""
    for regexp, sub in _STARTING_QUOTES:
        sentence = regexp.sub(sub, sentence)
    for regexp, sub in _PUNCTUATION:
        sentence = regexp.sub(sub, sentence)
    for regexp, sub in (_PARENS_BRACKETS, _DOUBLE_DASHES):
        sentence = regexp.sub(sub, sentence)
    sentence = f" {sentence} "
    for regexp, sub in _ENDING_QUOTES:
        sentence = regexp.sub(sub, sentence)
    for regexp in _CONTRACTIONS:
        sentence = regexp.sub(r" \1 \2 ", sentence)
    return sentence.split()


def word_tokens(text: str) -> list[str]:
    """Lowercased word tokens, approximating NLTK's ``word_tokenize(text.lower())``.

    The per-sentence rules are NLTK's Treebank-style ones (punctuation split off, "don't" ->
    "do", "n't", "it's" -> "it", "'s", quotes -> ``\u0060\u0060``/''), so tokens match NLTK
    exactly within a sentence. Sentence splitting, which decides whether a period in the middle
    of the text is split off, approximates Punkt (a short abbreviation list instead of the
    trained model), so mid-text periods after rare abbreviations can differ.
    """
    return [tok for sent in _split_sentences(text.lower()) for tok in _treebank_tokens(sent)]


# --- BLEU ------------------------------------------------------------------------------------


def _ngram_counts(tokens: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def bleu_from_tokens(reference: Sequence[str], candidate: Sequence[str], max_n: int = 4) -> float:
    """NLTK's unsmoothed ``sentence_bleu([reference], candidate)`` on already tokenized text.

    Clipped n-gram precisions p_1..p_max_n (denominator at least 1, as in NLTK), geometric mean
    with uniform weights, brevity penalty exp(1 - r/c) when c < r. Where any p_n is 0, NLTK
    returns about 1e-77 with a warning (its ``method0`` swaps 0 for the smallest float); we
    return exactly 0.0, which is the same for every threshold ICU uses.
    """
    if max_n < 1:
        raise ValueError(f"max_n must be at least 1, got {max_n}")
    c, r = len(candidate), len(reference)
    if c == 0:
        return 0.0
    log_sum = 0.0
    for n in range(1, max_n + 1):
        cand, ref = _ngram_counts(candidate, n), _ngram_counts(reference, n)
        matches = sum(min(count, ref[gram]) for gram, count in cand.items())
        if matches == 0:
            return 0.0
        log_sum += math.log(matches / max(1, sum(cand.values()))) / max_n
    brevity = 1.0 if c > r else math.exp(1.0 - r / c)
    return brevity * math.exp(log_sum)


def sentence_bleu(reference: str, candidate: str, max_n: int = 4) -> float:
    """ICU's BLEU check: unsmoothed sentence BLEU of ``candidate`` against one ``reference``.

    Both strings go through :func:`word_tokens` (lowercased), as ICU's ``val_score`` does with
    NLTK. Without smoothing, a generation sharing no 4-gram with the reference scores 0, which is
    why ICU's ``BLEU < 0.01`` test effectively means "no 4-gram of the suffix survives".
    """
    return bleu_from_tokens(word_tokens(reference), word_tokens(candidate), max_n=max_n)


# --- embeddings ------------------------------------------------------------------------------


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two (n, d) embedding matrices (or two d-vectors), shape (n,).

    Meant for the L2-normalised rows a :class:`~obliviate.models.embedding.SentenceEmbedder`
    returns, where it is the plain dot product; rows are renormalised anyway so raw vectors work,
    and an all-zero row (e.g. a text with no known TF-IDF term) scores 0 rather than NaN.
    """
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(b, dtype=np.float64))
    if a.shape != b.shape:
        raise ValueError(f"embedding shapes differ: {a.shape} vs {b.shape}; pair rows one to one")
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    dots = np.einsum("ij,ij->i", a, b)
    return np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), 0.0)
