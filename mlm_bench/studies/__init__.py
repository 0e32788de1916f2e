"""Studies: measurements that answer one design question each and print a Markdown table (the speed ablation, the
context ablation, the regression battery, the calibration of `upgrade`'s speed verdict); run as
`python -m mlm_bench.studies.<name>`, never imported by the run.

May import: errors, compat, seeding, config, data, modeling, training, runs, contract, gate, testing, upgrade.
"""
