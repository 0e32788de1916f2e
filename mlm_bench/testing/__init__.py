"""What the suite's tests share, and a user's tests can reuse: tiny settings, models and CLI arguments
(helpers), fixtures on the builtin corpus (fixtures, a pytest plugin), hypothesis strategies (strategies), every
fault the suite injects, defined once (faults), breakers that plant them and count whether they reached the code
they break (breakers, a pytest plugin), and the gate's test files (gate_files). `plugin` is the public pytest
plugin (the pytest11 entry point): options and fixtures for the user's own model, and both plugins above, so any
pytest where mlm-bench is installed has them; nothing here is autouse.

May import: errors, compat, seeding, config, data, modeling, training, runs, contract, gate.
"""
