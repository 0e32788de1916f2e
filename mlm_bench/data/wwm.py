"""Words for whole-word masking: gold segmentation or jieba, mapped onto token positions as word ids."""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from mlm_bench.errors import UsageError

# The builtin corpus' gold segmentation (corpus.builtin_dataset writes it); other text is segmented with jieba.
WORDS_COLUMN = "words"
WORD_IDS = "word_ids"
NO_WORD = -1


def segment(texts: Sequence[str]) -> list[list[str]]:
    """Split unsegmented Chinese text into words with jieba (the optional `wwm` extra)."""
    try:
        import jieba
    except ImportError as err:
        raise UsageError(
            "--mask wwm on a dataset without a 'words' column needs jieba to find words: "
            "pip install 'mlm-bench[wwm]', or pass --mask token"
        ) from err
    return [jieba.lcut(text) for text in texts]


def token_word_ids(offsets: Sequence[tuple[int, int]], special: Sequence[int], words: Sequence[str]) -> list[int]:
    """Per token, the index of the word holding its first character; NO_WORD for special tokens."""
    starts, position = [], 0
    for word in words:
        starts.append(position)
        position += len(word)
    return [
        NO_WORD if flag or end <= start else bisect.bisect_right(starts, start) - 1
        for (start, end), flag in zip(offsets, special, strict=True)
    ]


def batch_word_ids(
    texts: Sequence[str],
    words: Sequence[Sequence[str]] | None,
    offsets: Sequence[Sequence[tuple[int, int]]],
    special: Sequence[Sequence[int]],
) -> list[list[int]]:
    """Word ids of a tokenized batch, from the given segmentation or, when there is none, from jieba's."""
    segmented = segment(texts) if words is None else words
    for index, (text, row) in enumerate(zip(texts, segmented, strict=True)):
        if "".join(row) != text:
            raise UsageError(
                f"row {index}: its {WORDS_COLUMN!r} do not spell its text ({''.join(row)[:30]!r} vs {text[:30]!r}): "
                f"fix the column, or drop it so that jieba segments the text"
            )
    return [token_word_ids(o, s, w) for o, s, w in zip(offsets, special, segmented, strict=True)]
