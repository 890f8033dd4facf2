"""Test infrastructure: a fake GitHub REST API validated against GitHub's OpenAPI description."""
