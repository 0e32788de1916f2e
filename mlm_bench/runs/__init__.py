"""Runs: one run directory end to end (run), its claim, resume and checkpoints, SIGTERM handling, the results it
records and the model card.

May import: errors, compat, seeding, config, data, modeling, training.
"""
