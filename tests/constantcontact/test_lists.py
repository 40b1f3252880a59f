"""CC lists against the CC sandbox over loopback: find-or-create, counts, bulk membership."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests

from cc_storeplugin.constantcontact import bulk, lists
from cc_storeplugin.constantcontact.client import CCClient
from cc_storeplugin.extensions import db
from tests.conftest import dispose_engines, make_app

from . import cc_sandbox, sandbox_sign_in

NO_WAIT = {"sleep": lambda _s: None}


@contextmanager
def signed_in(database_url: str, **options: Any) -> Iterator[tuple[str, CCClient, Any]]:
    """(sandbox URL, a CCClient for a merchant signed in to it, the app)."""
    with cc_sandbox(**options) as (server, settings):
        app = make_app(database_url, **settings)
        with app.app_context():
            db.create_all()
            merchant = sandbox_sign_in()
            try:
                yield server.url, CCClient(merchant.id), app
            finally:
                db.session.remove()
                dispose_engines()


@pytest.fixture
def cc(sqlite_url):
    # call counts are asserted: the client keeps itself to 4/s; throttling is tested with faults
    with signed_in(sqlite_url, rate_per_s=None) as env:
        yield env


def sandbox_lists(url: str) -> list[dict]:
    return requests.get(url + "/_sandbox/state", timeout=10).json()["lists"]


def list_emails(url: str, list_id: str) -> set[str]:
    resp = requests.get(f"{url}/_sandbox/lists/{list_id}/emails", timeout=60)
    return set(resp.json()["emails"])


def fill(client: CCClient, list_id: str, n: int, prefix: str = "c") -> list[str]:
    """Import n contacts into a list; return their emails."""
    emails = [f"{prefix}{i}@example.com" for i in range(n)]
    results = bulk.import_contacts(
        client, (bulk.import_row(e) for e in emails), [list_id], **NO_WAIT
    )
    assert all(r.succeeded for r in results)
    return emails


def contact_ids(client: CCClient, list_id: str) -> dict[str, str]:
    return {
        c["email_address"]["address"]: c["contact_id"]
        for c in client.paginate("/contacts", {"lists": list_id, "limit": 500}, "contacts")
    }


def test_find_or_create_is_idempotent_and_exact(cc) -> None:
    url, client, _ = cc
    name = "Magento – All Customers"
    assert lists.find_list(client, name) is None
    client.request("POST", "/contact_lists", json={"name": name + " (old)"})
    client.request("POST", "/contact_lists", json={"name": "magento – all customers"})
    created = lists.find_or_create_list(client, name, "Every customer of the store")
    before = client.calls
    assert lists.find_or_create_list(client, name) == created
    assert client.calls == before + 1  # one exact-name lookup, no POST
    assert lists.find_list(client, name) == created
    named = [item for item in sandbox_lists(url) if item["name"] == name]
    assert [item["list_id"] for item in named] == [created]


def test_losing_a_creation_race_returns_the_winners_list(cc, monkeypatch) -> None:
    url, client, _ = cc
    name = "Kibo – Repeat Customers"
    real_find = lists.find_list
    lookups = []

    def find_after_the_other_worker_created_it(c: CCClient, n: str) -> str | None:
        lookups.append(n)
        if len(lookups) == 1:  # our lookup saw nothing; the other worker creates it now
            c.request("POST", "/contact_lists", json={"name": n})
            return None
        return real_find(c, n)

    monkeypatch.setattr(lists, "find_list", find_after_the_other_worker_created_it)
    list_id = lists.find_or_create_list(client, name)
    assert [item["list_id"] for item in sandbox_lists(url) if item["name"] == name] == [list_id]


def test_two_threads_creating_the_same_list_end_with_one(cc) -> None:
    url, client, app = cc
    name = "Magento – Lapsed Customers"
    barrier = threading.Barrier(2)
    got: list[str] = []
    failures: list[BaseException] = []

    def worker() -> None:
        try:
            with app.app_context():
                own = CCClient(client.merchant_id)
                barrier.wait(timeout=10)
                got.append(lists.find_or_create_list(own, name))
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not failures
    named = [item["list_id"] for item in sandbox_lists(url) if item["name"] == name]
    assert len(named) == 1 and got == named * 2


def test_member_counts_in_one_call(cc) -> None:
    _, client, _ = cc
    a = lists.find_or_create_list(client, "A")
    b = lists.find_or_create_list(client, "B")
    empty = lists.find_or_create_list(client, "Empty")
    fill(client, a, 30, "a")
    fill(client, b, 7, "b")
    before = client.calls
    assert lists.list_member_counts(client, [a, b, empty]) == {a: 30, b: 7, empty: 0}
    assert client.calls == before + 1
    assert lists.list_member_counts(client, [b]) == {b: 7}
    assert lists.list_member_counts(client, []) == {}


def test_remove_and_add_members_in_batches_of_500(cc) -> None:
    url, client, _ = cc
    source = lists.find_or_create_list(client, "Recent")
    other = lists.find_or_create_list(client, "Lapsed")
    emails = fill(client, source, 1_200)
    ids = contact_ids(client, source)
    assert len(ids) == 1_200
    leaving = sorted(emails)[:1_100]

    before = client.calls
    removal = lists.remove_members(client, source, [ids[e] for e in leaving])
    assert len(removal) == 3 and client.calls == before + 3
    moving = [ids[e] for e in leaving[:600]]
    adding = lists.add_members(client, [other], moving + moving[:10])  # duplicates ignored
    assert len(adding) == 2
    results = bulk.wait_for_activities(client, removal + adding, **NO_WAIT)
    assert all(r.succeeded for r in results.values())
    assert [results[a].items_total_count for a in removal] == [500, 500, 100]

    assert list_emails(url, source) == set(emails) - set(leaving)
    assert list_emails(url, other) == set(leaving[:600])


def test_membership_activities_check_their_arguments(cc) -> None:
    _, client, _ = cc
    with pytest.raises(ValueError):
        lists.add_members(client, [], ["x"])
    with pytest.raises(ValueError):
        lists.remove_members(client, [f"l{i}" for i in range(51)], ["x"])
    assert lists.remove_members(client, "some-list", []) == []
    assert client.calls == 0
