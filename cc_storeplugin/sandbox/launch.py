"""Build a sandbox app by name with a generated store, for the CLI and the demo."""

from __future__ import annotations

import importlib
from pathlib import Path

from flask import Flask

from cc_storeplugin.config import instance_dir


def default_store_path(customers: int, seed: int) -> Path:
    """Where generated sandbox stores are kept between runs."""
    return instance_dir() / "sandbox" / f"store-{customers}-s{seed}.sqlite"


def build_sandbox(
    name: str,
    *,
    store_path: str | Path | None = None,
    customers: int = 2000,
    seed: int = 1,
    **faults: float,
) -> Flask:
    """The named sandbox app; Magento and Kibo get a store file (generated if missing)."""
    module = importlib.import_module(f"cc_storeplugin.sandbox.{name}")
    options: dict[str, object] = {"seed": seed, **faults}
    if name in ("magento", "kibo"):
        from cc_storeplugin.sandbox.storegen import ensure_store

        path = Path(store_path) if store_path else default_store_path(customers, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        options["store"] = str(ensure_store(path, customers=customers, seed=seed))
    return module.create_app(**options)
