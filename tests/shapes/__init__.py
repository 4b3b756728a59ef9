"""Small Alembic backends in the shapes real projects have, for tests/test_alembic_shapes.py.

Each folder is one backend: copied into a temporary git repository by the tests, proven by
`zerodrift run` with only its zerodrift.toml (no wrapper env.py), and written again by
`zerodrift init`. Revisions create one table and add a column, enough for ZG-1 and ZG-2.
"""
