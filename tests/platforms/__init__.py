"""Tests of the platform adapters and clients."""
