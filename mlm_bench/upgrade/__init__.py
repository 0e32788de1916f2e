"""Upgrade: what a new release changes for the user. Two environments (the base, and the base with the spec
applied) built by envs, the contract tests, the fingerprint and the CPU benchmarks run in both (stages), compared
test by test and by the gate (outcomes, verdict), and reported with one thing to do (report).

May import: errors, compat, seeding, config, runs, contract, gate, envs.
"""
