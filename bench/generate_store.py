"""Generate (or reuse) a sandbox store file and print one JSON line of size and cost figures.

Usage: python bench/generate_store.py --customers 1000000 --seed 1 \
           --out instance/bench/store-1000000-s1.sqlite [--force]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

try:
    from cc_storeplugin.sandbox.storegen import ensure_store, generate_store, open_store
except ImportError:  # run from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from cc_storeplugin.sandbox.storegen import ensure_store, generate_store, open_store


def main(argv: list[str] | None = None) -> dict:
    """Build the store (unless a matching one exists) and print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--force", action="store_true", help="regenerate even if it exists")
    args = parser.parse_args(argv)
    out = args.out or Path("instance/bench") / f"store-{args.customers}-s{args.seed}.sqlite"
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    before = out.stat().st_mtime_ns if out.exists() else None
    if args.force:
        generate_store(out, customers=args.customers, seed=args.seed)
    else:
        ensure_store(out, customers=args.customers, seed=args.seed)
    seconds = time.perf_counter() - t0
    conn = open_store(out)
    meta = {k: v for k, v in conn.execute("SELECT key, value FROM meta")}
    conn.close()
    result = {
        "customers": int(meta["customers"]),
        "orders": int(meta["orders"]),
        "carts": int(meta["carts"]),
        "order_items": int(meta["order_items"]),
        "seconds": round(seconds, 2),
        "reused": before == out.stat().st_mtime_ns,
        "file_mb": round(out.stat().st_size / 2**20, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "path": str(out),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
