"""The gate: two environments' benchmark results, fingerprints and test outcomes read, compared and reported.

May import: errors, compat, seeding, config, runs, contract.
"""
