"""Pydantic documents of every record pccd-flows stores."""
