"""Data: the corpus (builtin or a user's), the Hub check, the tokenizer, encoding into rows, whole-word ids and
the MLM collator; settings -> corpus -> tokenize -> collate.

May import: errors, compat, seeding, config.
"""
