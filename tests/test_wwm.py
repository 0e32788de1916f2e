"""Whole-word masking: word ids from gold segmentation or jieba, carried through packing, masked word by word."""

from __future__ import annotations

import datasets
import pytest
from hypothesis import given

from mlm_bench.contract import masking as contract
from mlm_bench.data.collate import build_collator
from mlm_bench.data.encode import encode
from mlm_bench.data.wwm import NO_WORD, WORD_IDS, WORDS_COLUMN, batch_word_ids, segment
from mlm_bench.errors import UsageError
from mlm_bench.modeling.model import build_model
from mlm_bench.seeding import seed_everything
from mlm_bench.testing import strategies
from mlm_bench.training.train import train

PASSES = 5


def check_words(collator, examples, tokenizer, p, pad_to_multiple_of=None) -> contract.WordCounts:
    """The per-batch token contract plus whole words on one batch; its rates at a per-example alpha."""
    batch, ref = contract.check_contract(collator, examples, tokenizer, pad_to_multiple_of)
    counts = contract.check_whole_words(batch, ref, tokenizer.mask_token_id)
    contract.check_word_rates(counts, p, len(tokenizer), strategies.example_alpha(1))
    return counts


@given(
    generated=strategies.GENERATED_BATCHES,
    seed=strategies.SEEDS,
    pad_to_multiple_of=strategies.PAD_MULTIPLES,
    p=strategies.MLM_PROBABILITIES,
)
def test_whole_words_on_generated_batches(tiny_settings, generated, seed, pad_to_multiple_of, p):
    """On generated batches with random segmentations: every word is selected entirely or not at all, specials
    and padding never are, labels are the original ids, and word and token rates are within their bounds."""
    tokenizer = strategies.tokenizer_of_size(generated.vocab_size)
    settings = tiny_settings.replace(mask="wwm", mlm_probability=p, pad_to_multiple_of=pad_to_multiple_of)
    examples = generated.examples(special_mask=True, words=True)
    check_words(build_collator(tokenizer, settings, seed=seed), examples, tokenizer, p, pad_to_multiple_of)


@given(picks=strategies.REAL_ROW_PICKS, seed=strategies.SEEDS)
def test_whole_words_on_real_rows(tokenizer, wwm_rows, tiny_settings, picks, seed):
    """On People's Daily rows with gold segmentation, packed: the same whole-word properties."""
    examples = [dict(wwm_rows[i % len(wwm_rows)]) for i in picks]
    settings = tiny_settings.replace(mask="wwm")
    check_words(build_collator(tokenizer, settings, seed=seed), examples, tokenizer, settings.data.mlm_probability)


def test_word_rates_pooled(tokenizer, wwm_rows, tiny_settings):
    """Over 5 seeded passes (~14k words): selected words ~ Binomial(words, 0.15) (exact, 1e-6/3), selected tokens
    within Hoeffding's bound of 0.15 * tokens (1e-6/3), and [MASK] / kept / random per word 80/10/10 (1e-6/3)."""
    settings = tiny_settings.replace(mask="wwm")
    examples = [dict(r) for r in wwm_rows]
    total = contract.WordCounts()
    for seed in range(PASSES):
        collator = build_collator(tokenizer, settings, seed=seed)
        total += contract.check_rows(collator, examples, tokenizer, 8, words=True)[1]
    contract.check_word_rates(total, settings.data.mlm_probability, len(tokenizer))


def test_word_ids_follow_the_gold_segmentation(corpus, tokenizer, tiny_settings):
    """Unpacked, each word id's tokens span exactly that gold word of the text; specials carry no word."""
    rows = corpus.heldout.select(range(5))
    encoded = encode(
        rows, corpus.text_column, tokenizer, tiny_settings.replace(mask="wwm", max_length=512, packing=False)
    )
    offsets = tokenizer(list(rows[corpus.text_column]), return_offsets_mapping=True)["offset_mapping"]
    for text, words, row, spans in zip(rows[corpus.text_column], rows[WORDS_COLUMN], encoded, offsets, strict=True):
        assert [w == NO_WORD for w in row[WORD_IDS]] == [bool(s) for s in row["special_tokens_mask"]]
        for index, word in enumerate(words):
            positions = [i for i, w in enumerate(row[WORD_IDS]) if w == index]
            assert positions == list(range(positions[0], positions[-1] + 1))
            assert text[spans[positions[0]][0] : spans[positions[-1]][1]] == word


def check_words_adjacent(word_ids: list[int]) -> None:
    """Between two specials (one text, or the part of it a packed row holds) the word ids run 0, 1, 2, ... (or on
    from where the row cut the text): each word's tokens adjacent, no word skipped or repeated."""
    text: list[int] = []
    for w in [*word_ids, NO_WORD]:
        if w != NO_WORD:
            text.append(w)
            continue
        runs = [w for i, w in enumerate(text) if i == 0 or text[i - 1] != w]
        if runs:
            assert runs == list(range(runs[0], runs[0] + len(runs))), runs
        text = []


def test_word_ids_survive_packing(wwm_rows, tiny_settings):
    """Packed rows keep one word id per token; a word's tokens are adjacent and specials carry none."""
    for row in wwm_rows:
        assert len(row[WORD_IDS]) == len(row["input_ids"]) == tiny_settings.data.max_length
        assert all((w == NO_WORD) == bool(s) for w, s in zip(row[WORD_IDS], row["special_tokens_mask"], strict=True))
        check_words_adjacent(row[WORD_IDS])


def test_adjacency_check_fails_on_a_split_word(wwm_rows):
    """Test of the test above: a word id that comes back after another word is reported."""
    word_ids = list(wwm_rows[0][WORD_IDS])
    first = next(i for i, w in enumerate(word_ids) if w != NO_WORD and word_ids[i + 1] not in (w, NO_WORD))
    word_ids[first + 2] = word_ids[first]
    with pytest.raises(AssertionError):
        check_words_adjacent(word_ids)


def test_jieba_segments_text_without_gold_words(tokenizer, tiny_settings):
    """Text with no words column is segmented by jieba into words that spell it, several tokens per word."""
    texts = ["中国和西欧各国也将保持高层互访的势头。", "今天天气很好"]
    words = segment(texts)
    assert ["".join(w) for w in words] == texts
    encoded = encode(
        datasets.Dataset.from_dict({"text": texts}), "text", tokenizer, tiny_settings.replace(mask="wwm", packing=False)
    )
    ids = [w for w in encoded[0][WORD_IDS] if w != NO_WORD]
    assert len(set(ids)) < len(ids), "jieba found no word longer than one character"


def test_words_that_do_not_spell_the_text_are_refused():
    """A words column that disagrees with the text is a usage error naming the row."""
    with pytest.raises(UsageError, match="row 0"):
        batch_word_ids(["今天很好"], [["今天", "不好"]], [[(0, 1)]], [[0]])


def test_collator_refuses_rows_without_word_ids(tokenizer, heldout_rows, tiny_settings):
    """The whole-word collator says how to fix rows that were encoded without word ids."""
    collator = build_collator(tokenizer, tiny_settings.replace(mask="wwm"), seed=1)
    with pytest.raises(ValueError, match="mask='wwm'"):
        collator([dict(heldout_rows[0])])


def test_trainer_steps_on_word_rows(tokenizer, wwm_rows, tiny_settings, tmp_path):
    """The Trainer trains on rows carrying word ids through the whole-word collator (loss finite and positive)."""
    settings = tiny_settings.replace(mask="wwm", max_steps=1)
    seed_everything(settings.training.seed)
    summary = train(build_model(settings, tokenizer), wwm_rows, build_collator(tokenizer, settings), settings, tmp_path)
    assert summary.steps == 1
    assert all(0 < entry["loss"] < 20 for entry in summary.loss_curve)
