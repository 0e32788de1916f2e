"""Python environments for other version sets: the locks of what the suite was verified on, and building an
environment from one.

May import: errors, compat, seeding, config.
"""
