"""placeholder"""
from zerodrift.hookspecs import hookimpl


@hookimpl
def zerodrift_gates():
    return []
