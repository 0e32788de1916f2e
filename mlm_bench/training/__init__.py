"""Training: Trainer with the project's arguments and loss, the held-out evaluation and the fill-mask probes.

May import: errors, compat, seeding, config, data, modeling.
"""
