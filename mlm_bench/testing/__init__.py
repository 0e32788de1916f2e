"""What the suite's tests share, and a user's tests can reuse: tiny settings, models and CLI arguments
(helpers), fixtures on the builtin corpus (fixtures, a pytest plugin), hypothesis strategies (strategies), every
fault the suite injects, defined once (faults), breakers that plant them and count whether they reached the code
they break (breakers, a pytest plugin), and the gate's test files (gate_files). The tests load both plugins with
`-p` (pyproject addopts); nothing here is autouse.

May import: errors, compat, seeding, config, data, modeling, training, runs, contract, gate.
"""
