"""Shared sandbox fixtures: generated SQLite stores (see sandbox.storegen)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cc_storeplugin.sandbox.storegen import generate_store

FIXED_NOW = "2026-11-01 00:00:00"
"""Reference time of fixture stores, so their timestamps do not move from day to day."""


@pytest.fixture(scope="session")
def small_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2,000-customer store (6,000 orders, 1,000 carts), seed 1, generated once per session."""
    path = tmp_path_factory.mktemp("stores") / "small-2000-s1.sqlite"
    generate_store(path, customers=2000, seed=1, now=FIXED_NOW)
    return path


@pytest.fixture
def store_factory(tmp_path: Path) -> Callable[..., Path]:
    """Build a store file: ``store_factory(customers=100, seed=1, orders=None, carts=None)``."""
    made: list[Path] = []

    def make(
        customers: int = 100,
        seed: int = 1,
        orders: int | None = None,
        carts: int | None = None,
        now: str = FIXED_NOW,
    ) -> Path:
        path = tmp_path / f"store-{customers}-s{seed}-{len(made)}.sqlite"
        generate_store(path, customers=customers, orders=orders, carts=carts, seed=seed, now=now)
        made.append(path)
        return path

    return make
