"""An async service."""
