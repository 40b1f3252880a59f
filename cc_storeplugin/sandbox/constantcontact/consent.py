"""The sign-in / consent page of the sandbox authorization server (button ``#allow``)."""

from __future__ import annotations

import html

PREFIX = "/oauth2/default/v1"


def consent_page(args: dict[str, str], email: str, message: str = "") -> str:
    """HTML form re-posting the authorize parameters with the sign-in email and a decision."""
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
        for k, v in args.items()
    )
    note = f'<p class="error" id="error">{html.escape(message)}</p>' if message else ""
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>Constant Contact - Sign In</title></head><body>
<h1>Constant Contact (sandbox)</h1>{note}
<form method="post" action="{PREFIX}/authorize">{hidden}
<label for="email">Email</label>
<input type="email" id="email" name="email" value="{html.escape(email)}">
<p>The application <b>{html.escape(args.get("client_id", ""))}</b> requests access:
{html.escape(args.get("scope", ""))}</p>
<button type="submit" id="allow" name="decision" value="allow">Allow</button>
<button type="submit" id="deny" name="decision" value="deny">Deny</button>
</form></body></html>"""
