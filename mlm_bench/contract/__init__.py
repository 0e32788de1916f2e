"""The contract: the masking and training checks, the synthetic context workload, the known upstream defects,
per-version fingerprints and the reviewed changes between them.

May import: errors, compat, seeding, config, data, modeling, training, runs.
"""
