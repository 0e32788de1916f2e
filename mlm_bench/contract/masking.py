"""Contract: what masking must do on any library version, as checks that raise ContractViolation (training:
contract_training).

They live in the package, not in tests/, because `mlm-bench fingerprint` runs them on the installed versions and a
user who swaps in their own collator can check it the same way; the test suite runs them on real and generated
batches and on deliberately broken collators.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from mlm_bench.modeling.model import IGNORE_INDEX

# Chance that one rate check fails on a correct collator; tests divide it among their checks (Bonferroni).
ALPHA = 1e-6
# BERT's split of selected tokens: [MASK], a random token, unchanged.
MASK_PROB, RANDOM_PROB = 0.8, 0.1
BATCH_KEYS = {"input_ids", "attention_mask", "labels"}
NO_WORD = -1

Example = Mapping[str, Sequence[int]]
Collator = Callable[[list[dict[str, Any]]], Mapping[str, torch.Tensor]]


class ContractViolation(AssertionError):
    """A contract check failed. Its own class, so a caller catches this and not any assert inside torch or
    transformers; an AssertionError still, so pytest reports it as a failed check."""


def binomial_interval(n: int, p_low: float, p_high: float | None = None, alpha: float = ALPHA) -> tuple[int, int]:
    """Counts [lo, hi] holding a Binomial(n, p) draw, for any p in [p_low, p_high], with probability >= 1 - alpha.

    Exact tails (no normal approximation): P(X < lo) <= alpha/2 at p_low and P(X > hi) <= alpha/2 at p_high; a sum of
    independent Bernoullis whose probabilities lie in [p_low, p_high] is bounded by the same interval.
    """
    p_high = p_low if p_high is None else p_high
    if n == 0:
        return 0, 0
    k = torch.arange(n + 1, dtype=torch.float64)

    def pmf(p: float) -> torch.Tensor:
        log_choose = math.lgamma(n + 1) - torch.lgamma(k + 1) - torch.lgamma(n - k + 1)
        p_t = torch.tensor(p, dtype=torch.float64)
        return torch.exp(log_choose + torch.xlogy(k, p_t) + torch.xlogy(n - k, 1 - p_t))

    cdf_low = torch.cumsum(pmf(p_low), 0)
    # lo: the smallest count whose lower tail P(X <= lo) exceeds alpha/2, so P(X < lo) <= alpha/2.
    lo = int(torch.nonzero(cdf_low > alpha / 2)[0])
    survival_high = torch.flip(torch.cumsum(torch.flip(pmf(p_high), [0]), 0), [0])  # P(X >= k)
    # hi: the smallest count with P(X > hi) = P(X >= hi + 1) <= alpha/2.
    above = torch.nonzero(survival_high[1:] <= alpha / 2)
    hi = int(above[0]) if len(above) else n
    return lo, hi


def check_binomial(
    what: str, count: int, n: int, p_low: float, p_high: float | None = None, alpha: float = ALPHA
) -> None:
    """Raise if `count` of `n` is outside the exact binomial interval for probability p_low (..p_high)."""
    lo, hi = binomial_interval(n, p_low, p_high, alpha)
    if not lo <= count <= hi:
        p = f"{p_low}" if p_high is None or p_high == p_low else f"[{p_low:.6g}, {p_high:.6g}]"
        raise ContractViolation(
            f"{what}: {count} of {n} ({count / max(n, 1):.4f}) is outside [{lo}, {hi}], the interval a correct "
            f"collator (p={p}) leaves with probability < {alpha:.1e}"
        )


def hoeffding_halfwidth(squared_weights: float, alpha: float = ALPHA) -> float:
    """t with P(|sum w_i B_i - p sum w_i| >= t) <= alpha for independent Bernoulli(p) B_i; takes sum w_i^2."""
    return math.sqrt(squared_weights * math.log(2 / alpha) / 2)


@dataclass(frozen=True)
class Reference:
    """A batch's inputs padded as the collator pads them: what its output is compared with."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    special: torch.Tensor  # True where nothing may ever be selected: specials and padding
    word_ids: torch.Tensor | None  # per-token word id (NO_WORD outside words) when the examples carry them


def _pad(rows: list[list[int]], length: int, value: int, left: bool) -> torch.Tensor:
    padded = [[value] * (length - len(r)) + r if left else r + [value] * (length - len(r)) for r in rows]
    return torch.tensor(padded, dtype=torch.long)


def reference(examples: Sequence[Example], tokenizer: PreTrainedTokenizerBase, length: int) -> Reference:
    """Pad the examples to `length`; specials are the library's (the rows' special_tokens_mask, else the tokenizer's
    all_special_ids), plus [CLS] [SEP] [PAD] [MASK] wherever they occur, plus padding."""
    left = tokenizer.padding_side == "left"
    ids = [list(e["input_ids"]) for e in examples]
    attention = [list(e.get("attention_mask", [1] * len(i))) for e, i in zip(examples, ids, strict=True)]
    if all("special_tokens_mask" in e for e in examples):
        flagged = [list(e["special_tokens_mask"]) for e in examples]
    else:
        flagged = [tokenizer.get_special_tokens_mask(i, already_has_special_tokens=True) for i in ids]
    input_ids = _pad(ids, length, tokenizer.pad_token_id, left)
    structural = [tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id, tokenizer.mask_token_id]
    special = _pad(flagged, length, 1, left).bool() | torch.isin(
        input_ids, torch.tensor([i for i in structural if i is not None])
    )
    attention_mask = _pad(attention, length, 0, left)
    word_ids = None
    if all("word_ids" in e for e in examples):
        word_ids = _pad([list(e["word_ids"]) for e in examples], length, NO_WORD, left)
    return Reference(input_ids, attention_mask, special | (attention_mask == 0), word_ids)


def expected_length(examples: Sequence[Example], pad_to_multiple_of: int | None) -> int:
    """Length of the collated batch: the longest row, rounded up to the multiple."""
    longest = max(len(e["input_ids"]) for e in examples)
    if pad_to_multiple_of:
        return -(-longest // pad_to_multiple_of) * pad_to_multiple_of
    return longest


def check_layout(
    batch: Mapping[str, torch.Tensor], examples: Sequence[Example], pad_to_multiple_of: int | None
) -> None:
    """input_ids, attention_mask and labels, all int64 of shape (rows, padded length); nothing else left behind."""
    missing = BATCH_KEYS - set(batch)
    if missing:
        raise ContractViolation(f"batch lacks {sorted(missing)}; it has {sorted(batch)}")
    leftover = set(batch) - BATCH_KEYS - {"token_type_ids"}
    if leftover:
        raise ContractViolation(
            f"batch carries {sorted(leftover)} to the model; only {sorted(BATCH_KEYS)} belong there"
        )
    shape = (len(examples), expected_length(examples, pad_to_multiple_of))
    for key in sorted(batch):
        value = batch[key]
        if not isinstance(value, torch.Tensor) or value.dtype != torch.long or tuple(value.shape) != shape:
            got = (getattr(value, "dtype", type(value)), tuple(getattr(value, "shape", ())))
            raise ContractViolation(f"batch[{key!r}] is {got}, expected torch.int64 of shape {shape}")


def _first(where: torch.Tensor) -> str:
    row, col = (int(i) for i in torch.nonzero(where)[0])
    return f"{int(where.sum())} position(s), first at row {row}, column {col}"


def check_labels(batch: Mapping[str, torch.Tensor], ref: Reference) -> None:
    """Every label is -100 (not selected) or the original id of its position."""
    labels = batch["labels"]
    wrong = (labels != IGNORE_INDEX) & (labels != ref.input_ids)
    if wrong.any():
        raise ContractViolation(f"labels neither -100 nor the original id at {_first(wrong)}")


def check_unselected_kept(batch: Mapping[str, torch.Tensor], ref: Reference) -> None:
    """A position that carries no label keeps its input id."""
    changed = (batch["labels"] == IGNORE_INDEX) & (batch["input_ids"] != ref.input_ids)
    if changed.any():
        raise ContractViolation(f"input ids changed where nothing was selected at {_first(changed)}")


def check_specials_never_selected(batch: Mapping[str, torch.Tensor], ref: Reference) -> None:
    """No special token and no padding position carries a label."""
    labelled = (batch["labels"] != IGNORE_INDEX) & ref.special
    if labelled.any():
        raise ContractViolation(f"special or padding positions selected at {_first(labelled)}")


def check_attention_mask(batch: Mapping[str, torch.Tensor], ref: Reference) -> None:
    """attention_mask is the rows' own mask, padded with 0: masking never touches it."""
    changed = batch["attention_mask"] != ref.attention_mask
    if changed.any():
        raise ContractViolation(f"attention_mask differs from the padded input mask at {_first(changed)}")


def check_replacements_in_vocab(batch: Mapping[str, torch.Tensor], vocab_size: int) -> None:
    """Every input id, random replacements included, is a real id of the tokenizer's vocabulary."""
    ids = batch["input_ids"]
    bad = (ids < 0) | (ids >= vocab_size)
    if bad.any():
        raise ContractViolation(f"input ids outside the vocabulary [0, {vocab_size}) at {_first(bad)}")


@dataclass(frozen=True)
class MaskCounts:
    """Token tallies of collated batches: how many could be selected, were, and what each selected one became."""

    eligible: int = 0
    selected: int = 0
    masked: int = 0  # became [MASK]
    kept: int = 0  # kept the original id
    replaced: int = 0  # became any other id

    def __add__(self, other: MaskCounts) -> MaskCounts:
        return MaskCounts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


def count_masking(batch: Mapping[str, torch.Tensor], ref: Reference, mask_token_id: int) -> MaskCounts:
    """Tally one batch against its reference."""
    selected = batch["labels"] != IGNORE_INDEX
    ids = batch["input_ids"]
    masked = selected & (ids == mask_token_id)
    kept = selected & (ids == ref.input_ids)
    return MaskCounts(
        eligible=int((~ref.special).sum()),
        selected=int(selected.sum()),
        masked=int(masked.sum()),
        kept=int(kept.sum()),
        replaced=int((selected & ~masked & ~kept).sum()),
    )


def pool_size(p: float, q: float, alpha: float = ALPHA) -> int:
    """Fewest eligible tokens for which the exact 1 - alpha intervals of Binomial(n, p) and Binomial(n, q) do not
    overlap: pooled that much, check_binomial at p passes a right rate with probability >= 1 - alpha and rejects
    rate q with probability >= 1 - alpha / 2."""

    def apart(n: int) -> bool:
        (_, high_p), (low_q, _) = (
            binomial_interval(n, min(p, q), alpha=alpha),
            binomial_interval(n, max(p, q), alpha=alpha),
        )
        return high_p < low_q

    high = 1024
    while not apart(high):
        high *= 2
    low = high // 2
    while high - low > max(1, low // 100):  # to 1%: each probe builds an interval over n + 1 counts
        middle = (low + high) // 2
        low, high = (low, middle) if apart(middle) else (middle, high)
    return high


def check_selection_rate(counts: MaskCounts, mlm_probability: float, alpha: float = ALPHA) -> None:
    """Selected tokens ~ Binomial(eligible, mlm_probability)."""
    check_binomial("selected tokens", counts.selected, counts.eligible, mlm_probability, alpha=alpha)


def check_replacement_split(
    counts: MaskCounts,
    vocab_size: int,
    alpha: float = ALPHA,
    mask_prob: float = MASK_PROB,
    random_prob: float = RANDOM_PROB,
    unit: str = "selected tokens",
) -> None:
    """Of selected units, [MASK] / kept / other follow 80/10/10; a random draw hits [MASK] or the original 1/V of
    the time, so those two shares are bounded between p and p + 0.1/V (alpha split three ways)."""
    n, extra = counts.selected, random_prob / vocab_size
    keep_prob = 1 - mask_prob - random_prob
    check_binomial(f"{unit} -> [MASK]", counts.masked, n, mask_prob, mask_prob + extra, alpha / 3)
    check_binomial(f"{unit} kept", counts.kept, n, keep_prob, keep_prob + extra, alpha / 3)
    check_binomial(f"{unit} -> random", counts.replaced, n, random_prob - 2 * extra, random_prob, alpha / 3)


def check_contract(
    collator: Collator,
    examples: Sequence[Example],
    tokenizer: PreTrainedTokenizerBase,
    pad_to_multiple_of: int | None = None,
) -> tuple[dict[str, torch.Tensor], Reference]:
    """Collate once and run every per-batch check (layout, labels, kept ids, specials, attention, vocab, inputs
    unchanged); returns the batch and its reference for the statistical checks."""
    before = copy.deepcopy([dict(e) for e in examples])
    batch = dict(collator([dict(e) for e in examples]))
    if [dict(e) for e in examples] != before:
        raise ContractViolation("the collator changed its input rows")
    check_layout(batch, examples, pad_to_multiple_of)
    ref = reference(examples, tokenizer, batch["input_ids"].shape[1])
    check_labels(batch, ref)
    check_unselected_kept(batch, ref)
    check_specials_never_selected(batch, ref)
    check_attention_mask(batch, ref)
    check_replacements_in_vocab(batch, len(tokenizer))
    return batch, ref


def check_seeding(
    make_collator: Callable[[int], Collator], examples: Sequence[Example], seeds: tuple[int, int], eligible: int
) -> None:
    """The same seed gives the same batch; another seed a different one, once there are enough tokens that a
    coincidence is negligible (each token agrees with probability <= (1-p)^2 + p^2 < 0.75 at p <= 0.15: 48 tokens
    make it < 1e-6)."""
    first, again = make_collator(seeds[0]), make_collator(seeds[0])
    a, b = first([dict(e) for e in examples]), again([dict(e) for e in examples])
    for key in a:
        if not torch.equal(a[key], b[key]):
            raise ContractViolation(f"seed {seeds[0]} gave two different {key!r}: the collator ignores its seed")
    if eligible >= 48:
        other = make_collator(seeds[1])([dict(e) for e in examples])
        if all(torch.equal(a[key], other[key]) for key in ("input_ids", "labels")):
            raise ContractViolation(f"seeds {seeds[0]} and {seeds[1]} gave identical batches: the seed is not used")


def check_rows(
    collator: Collator,
    rows: Sequence[Example],
    tokenizer: PreTrainedTokenizerBase,
    batch_size: int,
    pad_to_multiple_of: int | None = None,
    words: bool = False,
) -> tuple[MaskCounts, WordCounts]:
    """Collate `rows` batch by batch, checking every per-batch property (and whole words when `words`); returns
    the pooled tallies for the statistical checks."""
    tokens, word_counts = MaskCounts(), WordCounts()
    for start in range(0, len(rows), batch_size):
        batch, ref = check_contract(collator, rows[start : start + batch_size], tokenizer, pad_to_multiple_of)
        tokens += count_masking(batch, ref, tokenizer.mask_token_id)
        if words:
            word_counts += check_whole_words(batch, ref, tokenizer.mask_token_id)
    return tokens, word_counts


@dataclass(frozen=True)
class WordCounts:
    """Word tallies of whole-word-masked batches."""

    words: int = 0
    selected_words: int = 0
    masked_words: int = 0
    kept_words: int = 0
    replaced_words: int = 0
    tokens: int = 0
    selected_tokens: int = 0
    squared_lengths: int = 0  # sum of squared word lengths, for Hoeffding's bound

    def __add__(self, other: WordCounts) -> WordCounts:
        return WordCounts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


def check_whole_words(batch: Mapping[str, torch.Tensor], ref: Reference, mask_token_id: int) -> WordCounts:
    """Each word (a run of equal word ids outside specials) is selected whole or not at all; returns the tallies
    (a word counts as [MASK]ed or kept only if all its tokens are) for the rate checks of its single treatment."""
    if ref.word_ids is None:
        raise ContractViolation("the rows carry no word_ids: encode them with mask='wwm'")
    inside = (ref.word_ids != NO_WORD) & ~ref.special
    flat = ref.word_ids.masked_fill(~inside, NO_WORD)
    previous = torch.nn.functional.pad(flat[:, :-1], (1, 0), value=NO_WORD)
    starts = inside & (flat != previous)
    # One number per word across the batch: count word starts in row-major order.
    word = (torch.cumsum(starts.flatten(), 0) - 1)[inside.flatten()]
    n_words = int(starts.sum())
    selected = (batch["labels"] != IGNORE_INDEX).flatten()[inside.flatten()]
    ids = batch["input_ids"].flatten()[inside.flatten()]
    original = ref.input_ids.flatten()[inside.flatten()]

    def per_word(flags: torch.Tensor) -> torch.Tensor:
        return torch.bincount(word, weights=flags.double(), minlength=n_words).long()

    length = torch.bincount(word, minlength=n_words)
    chosen = per_word(selected)
    partial = (chosen > 0) & (chosen < length)
    if partial.any():
        first = int(torch.nonzero(partial)[0])
        row, col = (int(i) for i in torch.nonzero(starts)[first])
        raise ContractViolation(f"{int(partial.sum())} word(s) only partly selected, first at row {row}, column {col}")
    whole = chosen == length
    masked = whole & (per_word(ids == mask_token_id) == length)
    kept = whole & ~masked & (per_word(ids == original) == length)
    return WordCounts(
        words=n_words,
        selected_words=int(whole.sum()),
        masked_words=int(masked.sum()),
        kept_words=int(kept.sum()),
        replaced_words=int((whole & ~masked & ~kept).sum()),
        tokens=int(length.sum()),
        selected_tokens=int(length[whole].sum()),
        squared_lengths=int((length**2).sum()),
    )


def check_word_rates(counts: WordCounts, mlm_probability: float, vocab_size: int, alpha: float = ALPHA) -> None:
    """Selected words ~ Binomial(words, p) (exact); selected tokens within Hoeffding's bound of p * tokens; the
    80/10/10 split per selected word (alpha split over the three checks)."""
    check_binomial("selected words", counts.selected_words, counts.words, mlm_probability, alpha=alpha / 3)
    slack = hoeffding_halfwidth(counts.squared_lengths, alpha / 3)
    expected = mlm_probability * counts.tokens
    if abs(counts.selected_tokens - expected) > slack:
        raise ContractViolation(
            f"selected tokens: {counts.selected_tokens} of {counts.tokens} is more than {slack:.1f} (Hoeffding, "
            f"alpha {alpha / 3:.1e}) from the target {expected:.1f}"
        )
    words = MaskCounts(
        eligible=counts.words,
        selected=counts.selected_words,
        masked=counts.masked_words,
        kept=counts.kept_words,
        replaced=counts.replaced_words,
    )
    check_replacement_split(words, vocab_size, alpha / 3, unit="selected words")


def check_max_length(rows: Sequence[Sequence[int]], max_length: int) -> None:
    """No encoded row is longer than max_length."""
    longest = max((len(r) for r in rows), default=0)
    if longest > max_length:
        raise ContractViolation(f"an encoded row has {longest} tokens, more than max_length {max_length}")


def check_unk_rate(rate: float, limit: float = 0.005) -> None:
    """The tokenizer knows the held-out text: at most `limit` of its tokens are [UNK]."""
    if not 0.0 <= rate <= limit:
        raise ContractViolation(f"held-out UNK rate {rate:.4f} exceeds {limit}: the tokenizer lost its vocabulary")
