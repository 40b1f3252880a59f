"""The plugin's one HTTP client for a Magento 2 store: token exchange and signed REST.

Every call is signed with OAuth 1.0a HMAC-SHA256, has timeouts, and is retried with
exponential backoff on connection errors, timeouts, 429 and 5xx; a 401 is never retried
(specs/magento.md §1.5, §1.9, §2, §5).
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qsl

import requests

from cc_storeplugin.httputil import retry_after_s

from .errors import MagentoError, MagentoUnavailable, rest_error, token_error
from .oauth1 import MagentoOAuth1, encode_query, join_store_url, rest_root, store_segment

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
TRANSIENT = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)
Params = Mapping[str, Any] | Iterable[tuple[str, Any]] | None
MAX_DELAY_S = 60.0
"""Upper bound of one wait, also for a server's Retry-After."""

SORT_FIELD = "entity_id"
"""Default sort field: the primary-key column of customers, orders and carts alike.

Sort orders name collection fields, not interface fields: customer items show ``id`` but
their EAV collection's key column is ``entity_id`` (as in spec §5 item 3, ``entity_id ASC``);
orders show ``entity_id``; carts show ``id`` over the quote table's ``entity_id``.
"""


def _item_id(item: Any) -> Any:
    if isinstance(item, dict):
        return item.get("entity_id", item.get("id"))
    return None


def search_params(
    filter_groups: Iterable[Iterable[Mapping[str, Any]]] = (),
    sort_orders: Iterable[tuple[str, str]] = (),
    page_size: int | None = None,
    current_page: int | None = None,
) -> list[tuple[str, str]]:
    """``searchCriteria[...]`` query pairs (§2.3): filters OR-ed in a group, groups AND-ed."""
    pairs: list[tuple[str, str]] = []
    for g, group in enumerate(filter_groups):
        for f, flt in enumerate(group):
            key = f"searchCriteria[filter_groups][{g}][filters][{f}]"
            value = flt.get("value")
            if isinstance(value, list | tuple | set):
                value = ",".join(str(v) for v in value)
            pairs.append((f"{key}[field]", str(flt["field"])))
            pairs.append((f"{key}[value]", "" if value is None else str(value)))
            if flt.get("condition_type"):
                pairs.append((f"{key}[condition_type]", str(flt["condition_type"])))
    for n, (field, direction) in enumerate(sort_orders):
        pairs.append((f"searchCriteria[sortOrders][{n}][field]", field))
        pairs.append((f"searchCriteria[sortOrders][{n}][direction]", direction.upper()))
    if page_size is not None:
        pairs.append(("searchCriteria[pageSize]", str(int(page_size))))
    if current_page is not None:
        pairs.append(("searchCriteria[currentPage]", str(int(current_page))))
    return pairs


class MagentoClient:
    """One Magento store, reached through ``store_base_url`` with the integration's credentials.

    REST paths are relative to ``rest/<store_code>/V1/``; ``calls`` counts HTTP requests sent
    (retries included).
    """

    def __init__(
        self,
        store_base_url: str,
        consumer_key: str,
        consumer_secret: str,
        access_token: str | None = None,
        access_token_secret: str | None = None,
        *,
        store_code: str = "default",
        timeout: float | tuple[float, float] = (5, 60),
        max_retries: int = 5,
        backoff_s: float = 0.5,
        session: requests.Session | None = None,
    ) -> None:
        self.store_base_url = store_base_url.strip()
        self.consumer_key = consumer_key
        self.consumer_secret = consumer_secret
        self.access_token = access_token
        self.access_token_secret = access_token_secret
        self.store_code = store_code
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.session = session or requests.Session()
        self.session.headers.setdefault("Accept", "application/json")
        self.calls = 0
        self._calls_lock = threading.Lock()
        self._sleep = time.sleep
        self._root: str | None = None  # REST prefix once a call confirmed it

    def __repr__(self) -> str:
        return f"MagentoClient({self.store_base_url!r}, store_code={self.store_code!r})"

    # -- token exchange -------------------------------------------------------------------

    def exchange_tokens(self, verifier: str) -> tuple[str, str]:
        """Verifier → request token → access token (§1.5); keeps and returns the access pair."""
        auth = MagentoOAuth1(self.consumer_key, self.consumer_secret)
        req_token, req_secret = self._token_call("oauth/token/request", auth)
        auth = MagentoOAuth1(
            self.consumer_key, self.consumer_secret, req_token, req_secret, verifier=verifier
        )
        self.access_token, self.access_token_secret = self._token_call("oauth/token/access", auth)
        return self.access_token, self.access_token_secret

    def _token_call(self, path: str, auth: MagentoOAuth1) -> tuple[str, str]:
        resp = self._send("POST", join_store_url(self.store_base_url, path), auth)
        if resp.status_code != 200:
            raise token_error(resp.status_code, resp.content)
        fields = dict(parse_qsl(resp.text.strip(), keep_blank_values=True))
        if not fields.get("oauth_token") or not fields.get("oauth_token_secret"):
            if fields.get("oauth_problem"):
                raise token_error(resp.status_code, resp.content)
            raise MagentoError(f"{path}: no oauth_token in Magento's answer", resp.status_code)
        return fields["oauth_token"], fields["oauth_token_secret"]

    # -- REST -----------------------------------------------------------------------------

    def get(self, path: str, params: Params = None) -> Any:
        """GET ``rest/<store_code>/V1/<path>`` and return the decoded JSON."""
        return self._rest("GET", path, params=params)

    def put(self, path: str, json: Any) -> Any:
        """PUT a JSON body to ``rest/<store_code>/V1/<path>`` (JSON bodies are not signed)."""
        return self._rest("PUT", path, json=json)

    def store_views(self) -> list[dict]:
        """``GET rest/V1/store/storeViews``: every view, ``admin`` (id 0) included."""
        return self._rest("GET", "store/storeViews", scoped=False)

    def websites(self) -> list[dict]:
        """``GET rest/V1/store/websites``, incl. the ``admin`` website (id 0)."""
        return self._rest("GET", "store/websites", scoped=False)

    def store_groups(self) -> list[dict]:
        """``GET rest/V1/store/storeGroups``."""
        return self._rest("GET", "store/storeGroups", scoped=False)

    def search(
        self,
        resource: str,
        *,
        filter_groups: Iterable[Iterable[Mapping[str, Any]]] = (),
        sort_orders: Iterable[tuple[str, str]] = (),
        page_size: int,
        current_page: int,
    ) -> dict:
        """One page of a search endpoint (``customers/search``, ``orders``, ``carts/search``)."""
        if page_size < 1 or current_page < 1:
            raise ValueError("page_size and current_page start at 1")
        params = search_params(filter_groups, sort_orders, page_size, current_page)
        return self.get(resource, params)

    def iter_pages(
        self,
        resource: str,
        *,
        filter_groups: Iterable[Iterable[Mapping[str, Any]]] = (),
        sort_orders: Iterable[tuple[str, str]] = ((SORT_FIELD, "ASC"),),
        page_size: int = 300,
        start_page: int = 1,
        ahead: int = 0,
    ) -> Iterator[tuple[int, dict]]:
        """Yield ``(page_number, body)`` until ``total_count`` is covered (§2.6, §5 item 1).

        Also stops on a page without items and on a page whose first id was already the
        first id of an earlier page (≤2.3 repeats the last page; non-REST code returns page 1).
        With ``ahead`` > 0, once ``total_count`` is known the next pages (up to the last) are
        requested that many at a time while the caller works on the current one; they are
        still yielded, and the guards applied, strictly in page order.
        """
        groups = [list(g) for g in filter_groups]
        sorts = list(sort_orders)

        def fetch(number: int) -> dict:
            return self.search(resource, filter_groups=groups, sort_orders=sorts,
                               page_size=page_size, current_page=number)  # fmt: skip

        seen_first: set[Any] = set()
        pool = ThreadPoolExecutor(ahead, thread_name_prefix="magento-page") if ahead > 0 else None
        inflight: dict[int, Future[dict]] = {}
        page = start_page
        try:
            while True:
                future = inflight.pop(page, None)
                body = future.result() if future else fetch(page)
                items = body.get("items") or []
                if not items:
                    return
                first = _item_id(items[0])
                if first is not None and first in seen_first:
                    log.warning("Magento %s repeated a page at page %d; stopping", resource, page)
                    return
                seen_first.add(first)
                total = body.get("total_count")
                last = math.ceil(total / page_size) if isinstance(total, int) else None
                if pool is not None and last is not None:
                    for n in range(page + 1, min(page + ahead, last) + 1):
                        if n not in inflight:
                            inflight[n] = pool.submit(fetch, n)
                yield page, body
                if last is not None and page >= last:
                    return
                page += 1
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    def set_subscription(self, customer_id: int, subscribed: bool) -> dict:
        """Set ``extension_attributes.is_subscribed`` by saving the whole customer (§2.7)."""
        cid = int(customer_id)
        customer = dict(self.get(f"customers/{cid}"))
        ext = dict(customer.get("extension_attributes") or {})
        ext["is_subscribed"] = bool(subscribed)
        customer["extension_attributes"] = ext
        return self.put(f"customers/{cid}", {"customer": customer})

    def rest_url(self, path: str, root: str | None = None, scoped: bool = True) -> str:
        """Absolute URL of a REST path (no query); unscoped = ``rest/V1`` (default store view)."""
        root = root or self._root or self._rest_roots()[0]
        scope = f"rest/{self.store_code}/V1/" if scoped and self.store_code else "rest/V1/"
        return f"{root}{scope}{path.lstrip('/')}"

    def _rest_roots(self) -> list[str]:
        """Candidate REST prefixes, best first.

        A trailing segment equal to our store code, ``default`` or ``admin`` is a store-code
        segment and is dropped. Any other trailing segment is ambiguous (a subdirectory
        install, or another store's code): try it kept, then dropped.
        """
        known = {self.store_code, "default", "admin"}
        first = rest_root(self.store_base_url, known)
        segment = store_segment(self.store_base_url)
        if segment is None or segment in known:
            return [first]
        return [first, rest_root(self.store_base_url, {segment})]

    def _rest(
        self, method: str, path: str, params: Params = None, json: Any = None, scoped: bool = True
    ) -> Any:
        if not self.access_token:
            raise MagentoError("no Magento access token yet: exchange the verifier first")
        auth = MagentoOAuth1(
            self.consumer_key, self.consumer_secret, self.access_token, self.access_token_secret
        )
        pairs = list(params.items() if isinstance(params, Mapping) else params or [])
        query = encode_query((k, _param(v)) for k, v in pairs)
        roots = [self._root] if self._root else self._rest_roots()
        for i, root in enumerate(roots):
            url = self.rest_url(path, root, scoped) + (f"?{query}" if query else "")
            resp = self._send(method, url, auth, json=json)
            if resp.status_code == 404 and i + 1 < len(roots) and not _is_json(resp):
                continue  # not Magento's REST at this prefix: try the next candidate
            if resp.status_code != 404 or _is_json(resp):
                self._root = root
            break
        if resp.status_code >= 400:
            raise rest_error(resp.status_code, resp.content)
        if not resp.content.strip():
            return None
        try:
            return resp.json()
        except ValueError as exc:
            msg = f"{method} {path}: Magento's answer is not JSON"
            raise MagentoError(msg, resp.status_code) from exc

    # -- transport ------------------------------------------------------------------------

    def _send(
        self, method: str, url: str, auth: MagentoOAuth1, json: Any = None
    ) -> requests.Response:
        """One logical call: a fresh signature per attempt, retries on transient failures."""
        short = url.split("?", 1)[0]
        last: MagentoError = MagentoUnavailable(f"{method} {short}: not attempted")
        for attempt in range(self.max_retries + 1):
            with self._calls_lock:
                self.calls += 1
            delay = self._backoff(attempt)
            try:
                resp = self.session.request(method, url, auth=auth, json=json, timeout=self.timeout)
            except TRANSIENT as exc:
                last = MagentoUnavailable(f"{method} {short}: {type(exc).__name__}")
            else:
                if resp.status_code not in RETRY_STATUSES:  # 401 and other 4xx are final
                    return resp
                err = rest_error(resp.status_code, resp.content)
                last = MagentoUnavailable(err.message, resp.status_code)
                delay = max(delay, min(retry_after_s(resp), MAX_DELAY_S))
            if attempt < self.max_retries:
                log.warning("Magento %s %s failed (%s); retry %d in %.1fs",
                            method, short, last, attempt + 1, delay)  # fmt: skip
                self._sleep(delay)
        raise last

    def _backoff(self, attempt: int) -> float:
        if self.backoff_s <= 0:
            return 0.0
        return min(MAX_DELAY_S, self.backoff_s * 2**attempt) * random.uniform(0.75, 1.0)  # noqa: S311


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _is_json(resp: requests.Response) -> bool:
    return "json" in resp.headers.get("Content-Type", "").lower()
