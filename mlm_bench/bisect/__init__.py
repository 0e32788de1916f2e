"""Bisect: the first published release of a package whose result of one check differs from a good release's
(index lists the releases, checks runs one check in an environment, search picks what to probe, run builds each
probed environment through envs and reports).

May import: errors, compat, seeding, config, runs, contract, gate, envs, upgrade.
"""
