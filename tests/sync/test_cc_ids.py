"""CC contact ids learned in bulk against the CC sandbox over loopback: every id of one
export (so later runs need none), and the ids of the contacts a run's imports created."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cc_storeplugin.constantcontact import bulk, lists
from cc_storeplugin.extensions import db
from cc_storeplugin.models import Customer, Merchant, StoreConnection
from cc_storeplugin.sync.cc_diff import learn_contact_ids, learn_new_contact_ids
from tests.constantcontact.test_lists import NO_WAIT, signed_in


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def cc(request, sqlite_url):
    url = sqlite_url if request.param == "sqlite" else request.getfixturevalue("pg_database_url")
    with signed_in(url, rate_per_s=None) as env:
        yield env
        db.session.rollback()
        db.drop_all()


def _mirror(connection_id: int, emails: list[str]) -> None:
    db.session.execute(
        db.insert(Customer), [{"connection_id": connection_id, "email": e} for e in emails]
    )
    db.session.commit()


def _ids(connection_id: int) -> dict[str, str | None]:
    rows = db.session.execute(
        db.select(Customer.email, Customer.cc_contact_id).where(
            Customer.connection_id == connection_id
        )
    )
    return dict(rows.all())


def _contact_id(client, email: str) -> str:
    return client.request("GET", "/contacts", params={"email": email})["contacts"][0]["contact_id"]


def test_one_export_teaches_the_mirror_every_id_in_it(cc) -> None:
    _, client, _ = cc
    conn = StoreConnection(merchant=Merchant(cc_account_id="acct-ids"), platform="magento")
    db.session.add(conn)
    db.session.commit()
    list_id = lists.find_or_create_list(client, "Recent")
    emails = [f"c{i}@example.com" for i in range(1_200)]
    bulk.import_contacts(client, [bulk.import_row(e.upper()) for e in emails], [list_id], **NO_WAIT)
    _mirror(conn.id, [*emails, "never-sent@example.com"])

    before = client.calls
    found = learn_contact_ids(client, conn.id, [list_id], ["c5@example.com", "gone@example.com"])
    assert client.calls - before <= 4  # export, a status poll or two, the CSV — not 1,200 lookups
    assert found == {"c5@example.com": _contact_id(client, "c5@example.com")}
    ids = _ids(conn.id)
    assert ids["never-sent@example.com"] is None
    assert ids["c777@example.com"] == _contact_id(client, "c777@example.com")
    assert len({ids[e] for e in emails}) == 1_200  # every contact of the export, each its own

    # contacts a later run's import creates are learned by creation time, 500 a call
    since = datetime.now(UTC) - timedelta(seconds=1)
    new = [f"n{i}@example.com" for i in range(600)]
    _mirror(conn.id, new)
    bulk.import_contacts(client, [bulk.import_row(e) for e in new], [list_id], **NO_WAIT)
    before = client.calls
    # more contacts created in the window than the run sent (an import just before): the
    # count on the first page stops it, one call, nothing paged
    assert learn_new_contact_ids(client, conn.id, since, sent=599) == 0
    assert client.calls - before == 1 and _ids(conn.id)["n0@example.com"] is None
    before = client.calls
    assert learn_new_contact_ids(client, conn.id, since, sent=600) == 600
    assert client.calls - before == 2
    ids = _ids(conn.id)
    assert ids["n599@example.com"] == _contact_id(client, "n599@example.com")
    assert ids["c5@example.com"] == found["c5@example.com"]  # the older ones are untouched
    assert learn_new_contact_ids(client, conn.id, since, 600) == 0  # nothing differs now
