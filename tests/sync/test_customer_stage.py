"""The PostgreSQL import's staged customer path gives the contacts of page upserts."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from cc_storeplugin.extensions import db
from cc_storeplugin.models import (
    ConsentEvent,
    Customer,
    CustomerStage,
    Merchant,
    StoreConnection,
    SyncRun,
)
from cc_storeplugin.platforms.base import CustomerRecord, OrderRecord
from cc_storeplugin.sync.customer_stage import merge_staged_customers, stage_customers
from cc_storeplugin.sync.mirror import upsert_customers, upsert_orders
from cc_storeplugin.sync.order_stage import BackgroundMerger

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
pytestmark = pytest.mark.postgres


@pytest.fixture
def pg(any_db_app):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("customer staging is the PostgreSQL import path")
    merchant = Merchant(cc_account_id="acct-cstage")
    a = StoreConnection(merchant=merchant, platform="magento")
    b = StoreConnection(merchant=merchant, platform="magento")
    db.session.add_all([merchant, a, b])
    db.session.flush()
    run = SyncRun(connection_id=b.id, kind="import", status="RUNNING")
    db.session.add(run)
    db.session.commit()
    for conn in (a.id, b.id):  # the same contacts before the import in both connections
        upsert_customers(
            conn,
            [
                CustomerRecord(platform_id="900", email="gone@shop.test", subscribed=False,
                               updated_at=T0 - timedelta(days=2)),
                CustomerRecord(platform_id="901", email="p1@shop.test", subscribed=True,
                               first_name="Old", updated_at=T0 - timedelta(days=1)),
            ],
        )  # fmt: skip
        upsert_orders(
            conn,
            [
                OrderRecord(platform_id=f"g{n}", email=f"P{n}@shop.test", state="complete",
                            is_purchase=True, placed_at=T0, first_name=f"Guest{n}")
                for n in (2, 3)
            ],
        )  # fmt: skip
    db.session.commit()
    return a.id, b.id, run.id


def random_pages(seed: int, *, ordered_versions: bool) -> list[list[CustomerRecord]]:
    """Pages of accounts: ids sharing an email that differs in case and spacing, repeated
    ids, blank and changing names and groups, every subscription claim, no email at all.

    ``ordered_versions``: a repeated id never comes back older than before (a store's
    pages in updated order); otherwise any version anywhere."""
    rng = random.Random(seed)
    pages = []
    for n in range(10):
        page = []
        for _ in range(rng.randint(5, 30)):
            pid = rng.randint(1, 40)
            who = pid % 13  # several ids per person
            email = rng.choice([f"p{who}@shop.test", f" P{who}@Shop.TEST", f"p{who}@SHOP.test "])
            hours = n if ordered_versions else rng.randint(0, 9)
            page.append(
                CustomerRecord(
                    platform_id=str(pid),
                    email=email if rng.random() > 0.05 else rng.choice([None, "  "]),
                    first_name=rng.choice([None, "", "  ", f"F{rng.randint(1, 3)}"]),
                    last_name=rng.choice([None, f" L{rng.randint(1, 3)} "]),
                    group=rng.choice([None, "1", "2"]),
                    subscribed=rng.choice([None, None, True, False]),
                    updated_at=T0 + timedelta(hours=hours, minutes=rng.randint(0, 59)),
                )
            )
        pages.append(page)
    return pages


def contacts_of(connection_id):
    db.session.expire_all()
    return sorted(
        (c.email, c.is_guest, c.platform_customer_id, c.first_name, c.last_name,
         c.customer_group, c.consent_state, c.consent_updated_at, c.platform_updated_at)
        for c in db.session.scalars(select(Customer).where(Customer.connection_id == connection_id))
    )  # fmt: skip


def ledger_of(connection_id):
    return [
        (e.email, e.action, e.source, e.reason, e.occurred_at)
        for e in db.session.scalars(
            select(ConsentEvent)
            .where(ConsentEvent.connection_id == connection_id)
            .order_by(ConsentEvent.id)
        )
    ]


def last_actions(ledger):
    return {email: action for email, action, *_ in ledger}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_one_page_a_merge_gives_exactly_the_page_upserts(pg, seed):
    a, b, run = pg
    for page in random_pages(seed, ordered_versions=False):
        expected = upsert_customers(a, page)
        staged = stage_customers(run, page)
        assert staged["rejected"] == expected["rejected"]
        merge_staged_customers(b, run)
        db.session.commit()

    assert contacts_of(b) == contacts_of(a)
    assert sorted(ledger_of(b)) == sorted(ledger_of(a))  # within a page, in any order
    assert db.session.scalar(select(func.count()).select_from(CustomerStage)) == 0


def identity(contacts):
    """Email, guest flag, winning account, consent state and the winner's version."""
    return [(c[0], c[1], c[2], c[6], c[8]) for c in contacts]


@pytest.mark.parametrize("seed", [4, 5, 6])
@pytest.mark.parametrize("merge_every", [3, 100])
def test_batches_give_the_same_contacts_and_final_consent(pg, seed, merge_every):
    """A batch sees an email's accounts of several pages at once, as the page path sees
    the accounts of one page. With pages in updated order (as the import reads them):
    - the same contacts, winning accounts and consent states; the ledger has one entry per
      change of the batch instead of one per page, ending in the same state;
    - names and group: a loser fills the winner's blanks from anywhere in the batch (the
      page path: from the same page), so a value may differ, but it is one the store sent
      for that email, and never blank where the page path has one;
    - consent_updated_at is the batch's latest version of the email (the page path: of the
      page that changed the state)."""
    a, b, run = pg
    sent: dict[str, set] = {}
    for n, page in enumerate(random_pages(seed, ordered_versions=True), 1):
        upsert_customers(a, page)
        stage_customers(run, page)
        if n % merge_every == 0:
            merge_staged_customers(b, run)
        db.session.commit()
        for r in page:
            values = sent.setdefault((r.email or "").strip().lower(), set())
            values |= {(r.first_name or "").strip(), (r.last_name or "").strip(), r.group}
    merge_staged_customers(b, run)
    db.session.commit()

    batch, pages = contacts_of(b), contacts_of(a)
    assert identity(batch) == identity(pages)
    assert last_actions(ledger_of(b)) == last_actions(ledger_of(a))
    assert len(ledger_of(b)) <= len(ledger_of(a))
    for mine, theirs in zip(batch, pages, strict=True):
        for k in (3, 4, 5):  # first name, last name, group
            assert (mine[k] is None) == (theirs[k] is None), (mine, theirs)
            assert mine[k] == theirs[k] or mine[k] in sent[mine[0]], (mine, theirs)


def test_an_unsubscribed_contact_is_never_resubscribed_and_the_ledger_names_the_run(pg):
    _, b, run = pg
    stage_customers(run, [CustomerRecord(platform_id="5", email="GONE@shop.test", subscribed=True),
                          CustomerRecord(platform_id="6", email="new@shop.test", subscribed=True,
                                         updated_at=T0)])  # fmt: skip
    merge_staged_customers(b, run)
    db.session.commit()

    states = {c[0]: c[6] for c in contacts_of(b)}
    assert states["gone@shop.test"] == "unsubscribed"
    assert states["new@shop.test"] == "subscribed"
    new = db.session.scalars(
        select(ConsentEvent).where(ConsentEvent.email == "new@shop.test")
    ).one()
    assert (new.action, new.sync_run_id, new.occurred_at) == ("subscribed", run, T0)
    assert (
        db.session.scalar(
            select(func.count())
            .select_from(ConsentEvent)
            .where(ConsentEvent.connection_id == b, ConsentEvent.email == "gone@shop.test")
        )
        == 1
    )  # only the unsubscribe from before the import


def test_a_registered_account_upgrades_the_guest_with_its_email(pg):
    _, b, run = pg
    stage_customers(run, [CustomerRecord(platform_id="7", email="p2@SHOP.test", last_name="Reg")])
    merge_staged_customers(b, run)
    db.session.commit()
    row = next(c for c in contacts_of(b) if c[0] == "p2@shop.test")
    assert row[:5] == ("p2@shop.test", False, "7", "Guest2", "Reg")


def test_a_staged_page_is_kept_until_merged_and_a_rolled_back_page_is_gone(pg):
    _, b, run = pg
    stage_customers(run, [CustomerRecord(platform_id="1", email="ann@shop.test")])
    db.session.commit()
    stage_customers(run, [CustomerRecord(platform_id="2", email="bob@shop.test")])
    db.session.rollback()  # the worker died before the page's checkpoint committed

    assert merge_staged_customers(b, run) == 1
    db.session.commit()
    emails = {c[0] for c in contacts_of(b)}
    assert "ann@shop.test" in emails and "bob@shop.test" not in emails
    assert merge_staged_customers(b, run) == 0


def test_a_background_merge_while_pages_are_staged_gives_the_same_contacts(pg):
    a, b, run = pg
    merger = BackgroundMerger(b, run, merge_staged_customers)
    try:
        for page in random_pages(6, ordered_versions=True):
            upsert_customers(a, page)
            stage_customers(run, page)
            merger.request()  # merges what is committed; this page waits for the next one
            db.session.commit()
    finally:
        merger.close()
    merge_staged_customers(b, run)
    db.session.commit()
    assert identity(contacts_of(b)) == identity(contacts_of(a))
    assert last_actions(ledger_of(b)) == last_actions(ledger_of(a))
