"""Signed launch of the app configuration page, as Kibo Admin does it (spec A1).

Kibo Admin opens the app's ConfigUrl with an HTML form POST:
``<ConfigUrl>?tenantId=<id>&messageHash=<hash>&dt=<date>`` with the form body
``x-vol-tenant-domain=<host>&x-vol-return-url=<admin url>``, where
``messageHash = kibo_hash(sharedSecret, dt, <URL-decoded form body>)``
(``ConfigurationAuth.cs``; test vector 1 is such a body, signed with an RFC 1123 ``dt``).
Verifiers also require the body to contain ``t{tenantId}.``: true when the tenant domain is
Kibo-like (``t12345.sandbox.mozu.com``), not when it is a loopback ``host:port``.

``GET /_sandbox/launch?url=<config URL>[&tenantDomain=&siteId=&dt=]`` returns an HTML page
whose form posts there (auto-submitted, with a button as fallback);
:func:`launch_request` gives the same URL and fields to tests.
"""

from __future__ import annotations

import html
import uuid
from dataclasses import dataclass
from urllib.parse import urlencode

from flask import Blueprint, Flask, Response, jsonify, request

from .common import state
from .signing import format_http_date, kibo_hash

bp = Blueprint("kibo_launcher", __name__)


@dataclass(frozen=True)
class LaunchRequest:
    """Everything Kibo Admin sends when it opens the configuration page."""

    url: str  # ConfigUrl plus tenantId, messageHash, dt
    form: dict[str, str]  # posted (URL-encoded) as the body
    signed_body: str  # the URL-decoded body the hash covers
    message_hash: str
    dt: str

    @property
    def encoded_body(self) -> str:
        return urlencode(self.form)


def return_url(tenant_domain: str, site_id: int, application_id: str) -> str:
    """Admin URL Kibo passes as ``x-vol-return-url``."""
    scheme = "http" if tenant_domain.startswith(("127.", "localhost")) else "https"
    app_hex = uuid.uuid5(uuid.NAMESPACE_URL, application_id).hex
    return f"{scheme}://{tenant_domain}/Admin/s-{site_id}/capability/edit/{app_hex}/#configure"


def launch_request(
    config_url: str,
    shared_secret: str,
    tenant_id: int,
    tenant_domain: str,
    site_id: int,
    application_id: str,
    dt: str | None = None,
    now: float | None = None,
) -> LaunchRequest:
    """Build the signed configuration-page request (``dt`` defaults to now, RFC 1123)."""
    dt = dt or format_http_date(now)
    form = {
        "x-vol-tenant-domain": tenant_domain,
        "x-vol-return-url": return_url(tenant_domain, site_id, application_id),
    }
    signed_body = "&".join(f"{k}={v}" for k, v in form.items())
    message_hash = kibo_hash(shared_secret, dt, signed_body)
    query = urlencode({"tenantId": str(tenant_id), "messageHash": message_hash, "dt": dt})
    url = f"{config_url}{'&' if '?' in config_url else '?'}{query}"
    return LaunchRequest(
        url=url, form=form, signed_body=signed_body, message_hash=message_hash, dt=dt
    )


def launch_html(req: LaunchRequest, auto_submit: bool = True) -> str:
    """An HTML page whose form POSTs the signed request, like Kibo Admin's iframe."""
    inputs = "\n".join(
        f'    <input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
        for k, v in req.form.items()
    )
    script = (
        "<script>document.getElementById('kibo-launch').submit();</script>" if auto_submit else ""
    )
    return (
        '<!doctype html>\n<html><head><meta charset="utf-8">'
        "<title>Kibo Admin - Application configuration</title></head><body>\n"
        f'  <form id="kibo-launch" method="post" action="{html.escape(req.url)}" '
        'enctype="application/x-www-form-urlencoded">\n'
        f"{inputs}\n"
        '    <button type="submit">Open configuration</button>\n'
        f"  </form>\n  {script}\n</body></html>\n"
    )


def sandbox_launch_request(
    config_url: str,
    tenant_domain: str | None = None,
    site_id: int | None = None,
    dt: str | None = None,
) -> LaunchRequest:
    """:func:`launch_request` with the current app's tenant, secret and clock."""
    st = state()
    cfg = st.config
    return launch_request(
        config_url,
        cfg.shared_secret,
        cfg.tenant_id,
        tenant_domain or st.tenant_domain(),
        site_id or st.site_ids()[0],
        cfg.application_id,
        dt=dt,
        now=st.now(),
    )


@bp.get("/_sandbox/launch")
def launch_page() -> Response | tuple[Response, int]:
    url = request.args.get("url")
    if not url or not url.startswith(("http://", "https://")):
        return jsonify({"message": "url=<absolute configuration URL> required"}), 400
    req = sandbox_launch_request(
        url,
        tenant_domain=request.args.get("tenantDomain"),
        site_id=request.args.get("siteId", type=int),
        dt=request.args.get("dt"),
    )
    if request.args.get("format") == "json":
        return jsonify(
            {"url": req.url, "form": req.form, "messageHash": req.message_hash, "dt": req.dt}
        )
    auto = request.args.get("auto", "1") != "0"
    return Response(launch_html(req, auto_submit=auto), mimetype="text/html")


def register(app: Flask) -> None:
    app.register_blueprint(bp)
