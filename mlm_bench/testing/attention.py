"""Deliberate breakages of BERT's attention, each wrapping the function it breaks: planted by tests/test_context.py
through the breakers fixture, and injected into whole test runs by the regression battery
(scripts/regression_battery.py). Not a pytest plugin, so a sitecustomize may import it before pytest starts."""

from __future__ import annotations

import functools

import torch


def causal(sdpa):
    @functools.wraps(sdpa)
    def attend(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **kwargs):
        allowed = torch.ones(query.shape[-2], key.shape[-2], dtype=torch.bool, device=query.device).tril()
        if attn_mask is None:
            attn_mask = allowed
        elif attn_mask.dtype == torch.bool:
            attn_mask = attn_mask & allowed
        else:
            attn_mask = attn_mask.masked_fill(~allowed, torch.finfo(attn_mask.dtype).min)
        return sdpa(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, scale=scale, **kwargs)

    return attend


def positions_ignored(forward):
    @functools.wraps(forward)
    def embed(self, *args, **kwargs):
        ids = kwargs.get("input_ids")
        ids = args[0] if ids is None else ids
        kwargs["position_ids"] = torch.zeros_like(ids)
        return forward(self, *args, **kwargs)

    return embed


def mask_dropped(forward):
    @functools.wraps(forward)
    def encode(self, *args, **kwargs):
        kwargs["attention_mask"] = None
        return forward(self, *args, **kwargs)

    return encode
