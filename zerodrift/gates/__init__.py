"""Built-in gates. Each module registers its gate through the ``zerodrift``
entry-point group, exactly as a third-party gate does."""
