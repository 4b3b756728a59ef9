"""Onboarding a backend: ``zerodrift init`` (write a first config) and ``zerodrift doctor`` (check a setup).

:mod:`zerodrift.onboard.init` reads a repository statically (``alembic.ini``,
``env.py``, the migrations, the application's modules) and writes a commented
``zerodrift.toml``; :mod:`zerodrift.onboard.doctor` checks that what the config
names really works on this machine before a first ``zerodrift run``. Each gate takes part
in both through the methods of :class:`zerodrift.gates.base.Gate` that
:mod:`zerodrift.onboard.hooks` describes.
"""
