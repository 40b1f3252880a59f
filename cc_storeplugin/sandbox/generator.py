"""The store generator: deterministic from the seed, streamed in chunks so memory stays bounded.

See :mod:`cc_storeplugin.sandbox.storegen` for the distributions it produces.
"""

from __future__ import annotations

import math
import os
import random
import sqlite3
import time
from array import array
from bisect import bisect_right
from collections import deque
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cc_storeplugin.sandbox.storegen import SCHEMA, open_store  # noqa: F401

# --------------------------------------------------------------------------------------
# Generator: deterministic from the seed, streamed in chunks so memory stays bounded.
# --------------------------------------------------------------------------------------

GENERATOR_VERSION = "1"
SPAN = 3 * 365 * 86400  # orders and customers spread over the three years before ``now``
CHUNK = 20_000
DAY = 86400


def _words(text: str) -> list[str]:
    return text.split()


FIRST = _words(
    "James Mary John Patricia Robert Jennifer Michael Linda William Elizabeth David Barbara "
    "Richard Susan Joseph Jessica Thomas Sarah Charles Karen Daniel Nancy Matthew Lisa Anthony "
    "Betty Mark Sandra Paul Ashley Steven Emily Andrew Donna Kevin Michelle Brian Carol George "
    "Amanda Olivia Noah Emma Liam Ava Lucas Mia Ethan Sophia Mason Chloe Wei Yuki Priya Omar "
    "Fatima Carlos Ana Luca Sofia Hans Ingrid Pierre Claire"
) + ["José", "Zoë", "Łukasz", "Søren", "Renée", "Chloé", "François", "Jürgen"]
LAST = _words(
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez "
    "Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris "
    "Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill "
    "Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Chen Kim Patel "
    "Singh Khan Rossi Schmidt Dubois Silva Tanaka Novak O'Brien"
) + ["Müller", "Núñez", "Øster", "Dvořák", "Ibáñez"]
_ASCII = str.maketrans("éëłøüñčřáçúÉŁØÜÑ'", "eelouncracuELOUN_")
DOMAINS = _words(
    "gmail.com gmail.com gmail.com yahoo.com hotmail.com outlook.com icloud.com aol.com "
    "example.com mail.example.org proton.me comcast.net"
)
INVALID_EMAILS = ("bob@", "no-at-sign.example.com", "a@b", "jane@@example.com", "x y@example.com")
UNICODE_EMAILS = ("josé@example.com", "用户@example.cn", "müller@beispiel.de", "zoë@example.fr")
CATEGORIES = _words("Apparel Shoes Accessories Home Kitchen Beauty Electronics Outdoor Toys Books")
ADJ = _words("Classic Organic Deluxe Compact Vintage Everyday Premium Eco Travel Smart")
NOUN = _words("Tee Sneaker Wallet Lamp Kettle Serum Headphones Tent Puzzle Novel Mug Scarf")
# (state, weight) for orders younger than 30 days and for older ones.
RECENT_STATES = (("new", 14), ("pending_payment", 8), ("processing", 38), ("complete", 30),
                 ("canceled", 5), ("holded", 3), ("closed", 2))  # fmt: skip
OLD_STATES = (("complete", 74), ("processing", 4), ("canceled", 10), ("closed", 7),
              ("holded", 1), ("pending_payment", 2), ("new", 2))  # fmt: skip
STATUS_OF = {"new": "pending"}  # Magento's default status per state; others equal the state
UPDATE_LAG = {
    "new": 0,
    "pending_payment": 0,
    "processing": 2,
    "complete": 7,
    "canceled": 3,
    "closed": 40,
    "holded": 5,
}  # fmt: skip  max days between created and updated


def _h(i: int, salt: int) -> int:
    """Cheap deterministic hash of an id (so names and emails can be recomputed from ids)."""
    return (((i ^ salt) * 0x9E3779B1) >> 7) & 0xFFFFFF


def _case_variant(email: str) -> str:
    """The same address in different case (upper, or lower when already upper)."""
    up = email.upper()
    return up if up != email else email.lower()


class _People:
    """Names, emails and creation times of customers as pure functions of id and seed."""

    def __init__(self, seed: int, n: int, start: int) -> None:
        self.s1, self.s2, self.s3 = (_h(seed + k, 0x5BD1E995) for k in (1, 2, 3))
        self.n, self.start = n, start

    def name(self, i: int) -> tuple[str, str]:
        return FIRST[_h(i, self.s1) % len(FIRST)], LAST[_h(i, self.s2) % len(LAST)]

    def created(self, i: int) -> int:
        return self.start + int(SPAN * (i - 1 + (_h(i, self.s3) % 1000) / 1000) / self.n)

    def base_email(self, i: int) -> str:
        first, last = (s.lower().translate(_ASCII) for s in self.name(i))
        h = _h(i, self.s3)
        local = (f"{first}.{last}{i}", f"{first[0]}{last}{i}", f"{last}.{first}{i}")[h % 3]
        email = f"{local}@{DOMAINS[(h >> 3) % len(DOMAINS)]}"
        return email.title() if h % 97 < 3 else email  # a few typed with capitals

    def email(self, i: int) -> str:
        if i % 397 == 11:  # same address as the previous customer, other case (website 2)
            return _case_variant(self.email(i - 1))
        if i % 499 == 13:
            k = i // 499
            e = INVALID_EMAILS[k % len(INVALID_EMAILS)]
            return (
                e
                if k < len(INVALID_EMAILS)
                else e.replace("@", f"{k}@", 1)
                if "@" in e
                else f"{k}{e}"
            )
        if i % 601 == 17:
            k = i // 601
            e = UNICODE_EMAILS[k % len(UNICODE_EMAILS)]
            return e if k < len(UNICODE_EMAILS) else e.replace("@", f"{k}@", 1)
        return self.base_email(i)


class _Clock:
    """Fast ``YYYY-MM-DD HH:MM:SS`` formatting of epoch seconds within the store's range."""

    def __init__(self, first: int, last: int) -> None:
        self.base = first - first % DAY
        days = (last - self.base) // DAY + 2
        self.days = [
            (datetime(1970, 1, 1) + timedelta(seconds=self.base + d * DAY)).strftime("%Y-%m-%d ")
            for d in range(days)
        ]
        self.hms = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(DAY)]

    def __call__(self, t: int) -> str:
        d, s = divmod(t - self.base, DAY)
        return self.days[d] + self.hms[s]


def _catalog(rng: random.Random, size: int = 500) -> list[tuple[int, str, str, str, float]]:
    """Products (id, sku, name, category, price); callers pick low indexes more often."""
    out = []
    for pid in range(1, size + 1):
        cat = CATEGORIES[pid % len(CATEGORIES)]
        name = f"{rng.choice(ADJ)} {rng.choice(NOUN)} {pid}"
        price = round(rng.choice((4.99, 9.99, 14.5, 19.99, 24.0, 39.95, 59.0, 89.99, 149.0)), 2)
        out.append((pid, f"{cat[:3].upper()}-{pid:05d}", name, cat, price))
    return out


def _now_ts(now: datetime | str | None) -> int:
    """Reference time as epoch seconds; default: today 00:00 UTC (stable within a day)."""
    if now is None:
        ts = int(time.time())
        return ts - ts % DAY
    if isinstance(now, str):
        now = datetime.fromisoformat(now)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return int(now.timestamp())


def _create_tables(conn: sqlite3.Connection) -> None:
    """Create the tables of SCHEMA without their indexes (those come after the bulk load)."""
    for stmt in SCHEMA.split(";"):
        if "CREATE TABLE" in stmt:
            conn.execute(stmt)


def generate_store(
    path: str | Path,
    customers: int = 1000,
    orders: int | None = None,
    carts: int | None = None,
    seed: int = 1,
    now: datetime | str | None = None,
) -> dict:
    """Write a realistic store file (replacing any) deterministically from ``seed``.

    Orders default to 3 per customer and carts to one per two customers. Returns the meta
    counts plus ``seconds``. The file appears atomically (written as ``<path>.tmp``).
    """
    t_begin = time.perf_counter()
    n = int(customers)
    m = 3 * n if orders is None else int(orders)
    nc = n // 2 if carts is None else int(carts)
    now_ts = _now_ts(now)
    start = now_ts - SPAN
    rng = random.Random(seed)
    rand = rng.random
    people = _People(seed, max(n, 1), start)
    clock = _Clock(start - 400 * DAY, now_ts)
    products = _catalog(rng)
    n_products = len(products)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(str(tmp))
    for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-200000", "temp_store=FILE"):
        conn.execute(f"PRAGMA {pragma}")
    _create_tables(conn)

    def flush(table: str, rows: list, width: int) -> None:
        if rows:
            conn.executemany(f"INSERT INTO {table} VALUES ({','.join('?' * width)})", rows)
            rows.clear()

    # Customers; each gets an order propensity (35% none, most 0-3, lognormal long tail).
    cum = array("d")
    total_w = 0.0
    rows: list = []
    lognorm = rng.lognormvariate
    for i in range(1, n + 1):
        first, last = people.name(i)
        c = people.created(i)
        upd = c if rand() < 0.5 else c + int((now_ts - c) * rand())
        sub = rand() < 0.4
        marketing = sub if rand() < 0.9 else not sub
        g = rand()
        group = 1 if g < 0.85 else 2 if g < 0.95 else 3
        web = 2 if i % 397 == 11 else 1
        r = rand()
        w = 0 if r < 0.35 else 1 if r < 0.6 else 2 if r < 0.75 else 3 if r < 0.85 else 0
        if r >= 0.85:
            w = 4 + lognorm(1.49, 1.0)
        total_w += w
        cum.append(total_w)
        rows.append((i, people.email(i), first, last, group, web, web, clock(c), clock(upd),
                     int(sub), int(marketing)))  # fmt: skip
        if len(rows) >= CHUNK:
            flush("customers", rows, 11)
    flush("customers", rows, 11)

    # Orders in time order (volume grows with the customer base), with items and, for some,
    # the converted cart they came from.
    r_states, r_cum = _cumulative(RECENT_STATES)
    o_states, o_cum = _cumulative(OLD_STATES)
    recent_guests: deque = deque(maxlen=500)
    conv_target = round(nc * 0.6) if m else 0
    p_conv = conv_target / m if m else 0.0
    orows: list = []
    irows: list = []
    crows: list = []
    cirows: list = []
    item_id = cart_id = cart_item_id = guest_no = 0
    guests = 0
    for j in range(1, m + 1):
        t = start + int(SPAN * math.sqrt((j - 1 + rand()) / m))
        limit = min(n, int(n * (t - start) / SPAN))
        if rand() >= 0.15 and limit and cum[limit - 1] > 0:
            k = min(bisect_right(cum, rand() * cum[limit - 1], 0, limit), limit - 1)
            cid = k + 1
            email = people.email(cid)
            first, last = people.name(cid)
            is_guest, store = 0, (2 if cid % 397 == 11 else 1)
        else:
            cid, is_guest, store = None, 1, 1
            guests += 1
            first, last, email = _guest_identity(rng, people, n, recent_guests, guest_no)
            guest_no += 1
        r = rand()
        n_items = 1 if r < 0.55 else 2 if r < 0.8 else 3 if r < 0.92 else 4
        subtotal = 0.0
        items = []
        for _ in range(n_items):
            pid, sku, name, cat, price = products[int(n_products * rand() * rand())]
            qty = 1.0 if rand() < 0.82 else 2.0 if rand() < 0.8 else 3.0
            item_id += 1
            irows.append((item_id, j, pid, sku, name, cat, qty, price))
            items.append((pid, sku, name, qty, price))
            subtotal += qty * price
        subtotal = round(subtotal, 2)
        grand = round(subtotal * 1.08 + (0.0 if subtotal >= 100 else 5.99), 2)
        if now_ts - t < 30 * DAY:
            state = r_states[bisect_right(r_cum, rand() * r_cum[-1])]
        else:
            state = o_states[bisect_right(o_cum, rand() * o_cum[-1])]
        upd = min(now_ts, t + int(UPDATE_LAG[state] * DAY * rand()))
        inc = f"{j:09d}"
        orows.append((j, inc, cid, email, first, last, is_guest, state, STATUS_OF.get(state, state),
                      grand, subtotal, grand if state == "closed" else 0.0, "USD", store, clock(t),
                      clock(upd)))  # fmt: skip
        if cart_id < conv_target and rand() < p_conv:
            cart_id += 1
            made = t - 60 - int(rand() * 3 * DAY)
            if cid is not None:
                made = max(made, people.created(cid))
            crows.append((cart_id, cid, email, 0, n_items, grand, inc, clock(made), clock(t)))
            for pid, sku, name, qty, price in items:
                cart_item_id += 1
                cirows.append((cart_item_id, cart_id, pid, sku, name, qty, price))
        if len(orows) >= CHUNK:
            flush("orders", orows, 16)
            flush("order_items", irows, 8)
            flush("carts", crows, 9)
            flush("cart_items", cirows, 7)
    converted = cart_id

    # Active carts: mostly touched in the last 30 days, some abandoned long ago.
    for _ in range(max(0, nc - converted)):
        age = int(rand() * 30 * DAY) if rand() < 0.85 else int((30 + rand() * 335) * DAY)
        made = now_ts - age - 1
        touched = made + int(rand() * min(age, 3 * DAY))
        limit = min(n, int(n * (made - start) / SPAN))
        cart_id += 1
        if rand() < 0.65 and limit > 0:
            cid = int(rand() * limit) + 1
            email = people.email(cid)
        else:
            cid = None
            email = _guest_identity(rng, people, n, recent_guests, guest_no)[2]
            guest_no += 1
            if rand() < 0.3:
                email = None  # a guest who has not reached the email step
        n_items = 1 + int(rand() * rand() * 5)
        grand = 0.0
        for _ in range(n_items):
            pid, sku, name, _cat, price = products[int(n_products * rand() * rand())]
            cart_item_id += 1
            cirows.append((cart_item_id, cart_id, pid, sku, name, 1.0, price))
            grand += price
        crows.append((cart_id, cid, email, 1, n_items, round(grand, 2), None, clock(made),
                      clock(touched)))  # fmt: skip
        if len(crows) >= CHUNK:
            flush("carts", crows, 9)
            flush("cart_items", cirows, 7)
    for table, rows_, width in (("orders", orows, 16), ("order_items", irows, 8),
                                ("carts", crows, 9), ("cart_items", cirows, 7)):  # fmt: skip
        flush(table, rows_, width)

    meta = {
        "seed": seed,
        "customers": n,
        "orders": m,
        "carts": cart_id,
        "now": clock(now_ts),
        "order_items": item_id,
        "cart_items": cart_item_id,
        "guest_orders": guests,
        "websites": "1,2",
        "generator_version": GENERATOR_VERSION,
    }
    conn.executemany("INSERT INTO meta VALUES (?, ?)", [(k, str(v)) for k, v in meta.items()])
    conn.commit()
    conn.executescript(SCHEMA)  # indexes, built once over the loaded rows
    conn.execute("INSERT INTO meta VALUES ('complete', '1')")
    conn.commit()
    conn.close()
    os.replace(tmp, path)
    return {**meta, "seconds": round(time.perf_counter() - t_begin, 2)}


def _cumulative(pairs: tuple[tuple[str, int], ...]) -> tuple[list[str], list[float]]:
    """Split (value, weight) pairs into values and a running total for bisect sampling."""
    values, totals, acc = [], [], 0.0
    for value, weight in pairs:
        acc += weight
        values.append(value)
        totals.append(acc)
    return values, totals


def _guest_identity(
    rng: random.Random, people: _People, n: int, recent: deque, guest_no: int
) -> tuple[str, str, str]:
    """A guest checkout's (first, last, email): new, a repeat guest, or a registered address."""
    r = rng.random()
    if r < 0.2 and n:  # a registered customer checking out as guest, half in other case
        k = int(rng.random() * n) + 1
        email = people.email(k)
        return (*people.name(k), _case_variant(email) if r < 0.1 else email)
    if r < 0.35 and recent:
        return recent[int(rng.random() * len(recent))]
    first = FIRST[int(rng.random() * len(FIRST))]
    last = LAST[int(rng.random() * len(LAST))]
    slug = f"{first}.{last}".lower().translate(_ASCII)
    ident = (first, last, f"{slug}.g{guest_no}@{DOMAINS[guest_no % len(DOMAINS)]}")
    recent.append(ident)
    return ident
