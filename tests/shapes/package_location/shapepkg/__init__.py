"""A package whose migrations ship inside it (script_location = shapepkg:migrations)."""
