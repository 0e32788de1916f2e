"""Tests of the tests: every contract check reports a collator (or a run) that breaks its property on purpose."""

from __future__ import annotations

import math

import pytest
import torch

from mlm_bench.contract import masking as contract
from mlm_bench.data.collate import MlmCollator, WholeWordMaskCollator
from mlm_bench.data.wwm import WORD_IDS

# Five seeded passes over the held-out rows: ~22k eligible tokens, enough power for every breakage below.
PASSES = 5


class SelectsAt20(MlmCollator):
    """Selects 20% of tokens whatever it was configured with."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.mlm_probability = 0.20


class Tampering(MlmCollator):
    """Runs the library's masking, then lets `tamper(original, inputs, labels)` break the result."""

    def tamper(self, original: torch.Tensor, inputs: torch.Tensor, labels: torch.Tensor) -> None:
        raise NotImplementedError

    def torch_mask_tokens(self, inputs, special_tokens_mask=None, offset_mapping=None):
        original = inputs.clone()
        inputs, labels = super().torch_mask_tokens(inputs, special_tokens_mask, offset_mapping)
        self.tamper(original, inputs, labels)
        return inputs, labels


class LabelsSpecials(Tampering):
    def tamper(self, original, inputs, labels):
        special = torch.isin(original, torch.tensor([self.tokenizer.cls_token_id, self.tokenizer.sep_token_id]))
        labels[special] = original[special]


class LabelsPadding(Tampering):
    def tamper(self, original, inputs, labels):
        padding = original == self.tokenizer.pad_token_id
        labels[padding] = original[padding]


class Mislabels(Tampering):
    def tamper(self, original, inputs, labels):
        selected = labels != -100
        labels[selected] = (labels[selected] + 1) % len(self.tokenizer)


class MasksUnlabelled(Tampering):
    def tamper(self, original, inputs, labels):
        inputs[:, 1][labels[:, 1] == -100] = self.tokenizer.mask_token_id


class RandomOutsideVocab(Tampering):
    def tamper(self, original, inputs, labels):
        replaced = (labels != -100) & (inputs != original) & (inputs != self.tokenizer.mask_token_id)
        inputs[replaced] += len(self.tokenizer)


class TouchesAttention(MlmCollator):
    def torch_call(self, examples):
        batch = super().torch_call(examples)
        batch["attention_mask"] = torch.ones_like(batch["attention_mask"])
        return batch


class Int32Labels(MlmCollator):
    def torch_call(self, examples):
        batch = super().torch_call(examples)
        batch["labels"] = batch["labels"].int()
        return batch


class MutatesRows(MlmCollator):
    def torch_call(self, examples):
        examples[0]["input_ids"][1] = self.tokenizer.mask_token_id
        return super().torch_call(examples)


class IgnoresSeed(MlmCollator):
    """Draws from the global RNG whatever seed it was given."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.seed = None


class OneSeedForAll(MlmCollator):
    def __post_init__(self) -> None:
        super().__post_init__()
        self.seed = 7


class PerTokenTreatment(WholeWordMaskCollator):
    """Selects whole words but draws [MASK] / random / kept per token, as the library does, not per word."""

    def torch_mask_tokens(self, inputs, special_tokens_mask=None, offset_mapping=None):
        original = inputs.clone()
        inputs, labels = super().torch_mask_tokens(inputs, special_tokens_mask, offset_mapping)
        selected = labels != -100
        inputs[selected] = original[selected]
        roll = torch.rand(inputs.shape, generator=self.generator)
        inputs[selected & (roll < 0.8)] = self.tokenizer.mask_token_id
        random_ids = torch.randint(len(self.tokenizer), inputs.shape, generator=self.generator)
        to_random = selected & (roll >= 0.8) & (roll < 0.9)
        inputs[to_random] = random_ids[to_random]
        return inputs, labels


def tally(collator_for_seed, rows, tokenizer, words: bool = False):
    """Pooled tallies of PASSES seeded collations of every row (per-batch checks run too)."""
    examples = [dict(r) for r in rows]
    tokens, word_counts = contract.MaskCounts(), contract.WordCounts()
    for seed in range(PASSES):
        t, w = contract.check_rows(collator_for_seed(seed), examples, tokenizer, 8, words=words)
        tokens, word_counts = tokens + t, word_counts + w
    return tokens, word_counts


def test_selection_rate_passes_at_015_and_fails_at_020(tokenizer, heldout_rows):
    """The rate check accepts the library at 0.15 and reports a collator that selects at 0.20 instead."""
    good, _ = tally(lambda s: MlmCollator(tokenizer, mlm_probability=0.15, seed=s), heldout_rows, tokenizer)
    contract.check_selection_rate(good, 0.15)
    bad, _ = tally(lambda s: SelectsAt20(tokenizer, mlm_probability=0.15, seed=s), heldout_rows, tokenizer)
    with pytest.raises(contract.ContractViolation, match="selected tokens"):
        contract.check_selection_rate(bad, 0.15)


class SelectsAt16(MlmCollator):
    """Selects 16% of tokens whatever it was configured with: one point off."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.mlm_probability = 0.16


def pooled_rate(collator_for_seed, rows, tokenizer, eligible: int) -> contract.MaskCounts:
    """Tallies of seeded collations of all rows (seeds 0, 1, ...) until at least `eligible` tokens are pooled."""
    examples = [dict(r) for r in rows]
    length = max(len(e["input_ids"]) for e in examples)
    ref = contract.reference(examples, tokenizer, length)
    counts, seed = contract.MaskCounts(), 0
    while counts.eligible < eligible:
        counts += contract.count_masking(collator_for_seed(seed)(examples), ref, tokenizer.mask_token_id)
        seed += 1
    return counts


def test_pooled_rate_check_tells_016_from_015(tokenizer, heldout_rows):
    """Pooled over contract.pool_size(0.15, 0.16) eligible tokens (~126k), the rate check passes the library at 0.15
    (false alarm <= 1e-6) and rejects a collator selecting at 0.16 (missed <= 5e-7)."""
    needed = contract.pool_size(0.15, 0.16)
    good = pooled_rate(lambda s: MlmCollator(tokenizer, mlm_probability=0.15, seed=s), heldout_rows, tokenizer, needed)
    contract.check_selection_rate(good, 0.15)
    bad = pooled_rate(lambda s: SelectsAt16(tokenizer, mlm_probability=0.15, seed=s), heldout_rows, tokenizer, needed)
    with pytest.raises(contract.ContractViolation, match="selected tokens"):
        contract.check_selection_rate(bad, 0.15)


def test_pool_size_follows_the_binomial_intervals():
    """Pooled that much, the two intervals are apart; a hundredth fewer, they overlap (the search is to 1%)."""
    n = contract.pool_size(0.15, 0.16)
    _, high = contract.binomial_interval(n, 0.15)
    low, _ = contract.binomial_interval(n, 0.16)
    assert high < low
    _, high = contract.binomial_interval(int(n * 0.98), 0.15)
    low, _ = contract.binomial_interval(int(n * 0.98), 0.16)
    assert high >= low


def test_split_check_reports_90_5_5(tokenizer, heldout_rows):
    """The 80/10/10 check reports a collator configured 90/5/5."""
    counts, _ = tally(
        lambda s: MlmCollator(tokenizer, mask_replace_prob=0.9, random_replace_prob=0.05, seed=s),
        heldout_rows,
        tokenizer,
    )
    with pytest.raises(contract.ContractViolation, match=r"selected tokens -> \[MASK\]|kept|random"):
        contract.check_replacement_split(counts, len(tokenizer))


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (LabelsSpecials, "special or padding positions selected"),
        (LabelsPadding, "special or padding positions selected"),
        (Mislabels, "labels neither -100 nor the original id"),
        (MasksUnlabelled, "input ids changed where nothing was selected"),
        (RandomOutsideVocab, "outside the vocabulary"),
        (TouchesAttention, "attention_mask differs"),
        (Int32Labels, "expected torch.int64"),
        (MutatesRows, "changed its input rows"),
    ],
)
def test_per_batch_checks_report_breakage(tokenizer, unpacked_rows, broken, message):
    """Each per-batch property's check reports a collator that breaks exactly that property (on padded rows)."""
    examples = [dict(r) for r in unpacked_rows.select(range(16))]
    with pytest.raises(contract.ContractViolation, match=message):
        contract.check_contract(broken(tokenizer, seed=3), examples, tokenizer)


def test_layout_check_reports_ignored_pad_to_multiple_of(tokenizer, unpacked_rows):
    """A batch not padded to the configured multiple is reported."""
    examples = [dict(r) for r in unpacked_rows if len(r["input_ids"]) % 8][:4]
    assert examples, "need rows whose length is not a multiple of 8"
    longest = max(len(e["input_ids"]) for e in examples)
    with pytest.raises(contract.ContractViolation, match=f"of shape \\(4, {-(-longest // 8) * 8}\\)"):
        contract.check_contract(MlmCollator(tokenizer, pad_to_multiple_of=None, seed=1), examples, tokenizer, 8)


@pytest.mark.parametrize(("broken", "message"), [(IgnoresSeed, "ignores its seed"), (OneSeedForAll, "not used")])
def test_seeding_check_reports_broken_seeding(tokenizer, heldout_rows, broken, message):
    """A collator that ignores its seed, or uses one seed for all, is reported."""
    examples = [dict(r) for r in heldout_rows.select(range(8))]
    with pytest.raises(contract.ContractViolation, match=message):
        contract.check_seeding(lambda s: broken(tokenizer, seed=s), examples, (11, 12), eligible=400)


def test_whole_word_check_reports_token_masking(tokenizer, wwm_rows):
    """Per-token selection on rows with words leaves words partly selected, and the check says so."""
    collator = MlmCollator(tokenizer, seed=5)
    examples = [dict(r) for r in wwm_rows.select(range(8))]
    batch, ref = contract.check_contract(
        lambda rows: collator([{k: v for k, v in r.items() if k != WORD_IDS} for r in rows]), examples, tokenizer
    )
    with pytest.raises(contract.ContractViolation, match="partly selected"):
        contract.check_whole_words(batch, ref, tokenizer.mask_token_id)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tok, s: WholeWordMaskCollator(tok, mlm_probability=0.20, seed=s), "selected words"),
        (lambda tok, s: WholeWordMaskCollator(tok, mask_replace_prob=0.9, random_replace_prob=0.05, seed=s), "words"),
        (lambda tok, s: PerTokenTreatment(tok, seed=s), r"selected words -> \[MASK\]"),
    ],
    ids=["rate-0.20", "split-90-5-5", "per-token-treatment"],
)
def test_word_rate_checks_report_breakage(tokenizer, wwm_rows, make, message):
    """The word checks report whole-word masking at 0.20, split 90/5/5, or treated per token instead of per word."""
    _, words = tally(lambda s: make(tokenizer, s), wwm_rows, tokenizer, words=True)
    with pytest.raises(contract.ContractViolation, match=message):
        contract.check_word_rates(words, 0.15, len(tokenizer))


@pytest.mark.parametrize(("n", "p", "alpha"), [(1, 0.15, 0.1), (50, 0.15, 0.01), (200, 0.5, 1e-3), (300, 0.02, 1e-6)])
def test_binomial_interval_is_exact(n, p, alpha):
    """The interval is the tightest one whose two tails each hold at most alpha/2 (checked against math.comb)."""
    pmf = [math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)]
    lo, hi = contract.binomial_interval(n, p, alpha=alpha)
    assert sum(pmf[:lo]) <= alpha / 2 < sum(pmf[: lo + 1])
    assert sum(pmf[hi + 1 :]) <= alpha / 2
    assert hi == 0 or sum(pmf[hi:]) > alpha / 2


def test_unk_and_length_checks_report_breakage():
    """An UNK rate above 0.5% and a row longer than max_length are reported."""
    with pytest.raises(contract.ContractViolation, match="UNK rate"):
        contract.check_unk_rate(0.01)
    with pytest.raises(contract.ContractViolation, match="more than max_length"):
        contract.check_max_length([[1] * 65], 64)
