"""Modeling: BERT built from a config or loaded pretrained, packed-text isolation and the sparse MLM head.

May import: errors, compat, seeding, config, data.
"""
