"""History: a package's releases side by side (the last of each minor line by default), each built as the base's
pins plus that release, its contract tests and fingerprint (and with --benchmarks its CPU benchmarks) run once and
kept (collect), compared release by release (matrix), and drawn as one self-contained HTML page with its JSON (page).

May import: errors, compat, seeding, config, runs, contract, gate, envs, upgrade, bisect.
"""
