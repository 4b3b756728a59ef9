"""The attribution example backend's application package."""
