"""marshmallow schemas for every JSON body the API takes or gives."""

from __future__ import annotations

from marshmallow import Schema, fields, validate


class ConnectionCreate(Schema):
    """POST /api/v1/connections"""

    platform = fields.String(
        required=True,
        validate=validate.OneOf(
            ["magento"],
            error="must be 'magento' (Kibo connections are created by installing the app "
            "from the Kibo App Marketplace)",
        ),
    )


class Progress(Schema):
    phase = fields.String(allow_none=True)
    done = fields.Integer()
    total = fields.Integer(allow_none=True)
    eta_s = fields.Integer(allow_none=True)


class RunOut(Schema):
    id = fields.Integer()
    kind = fields.String()
    status = fields.String()
    phase = fields.String(allow_none=True)
    totals = fields.Dict()
    error_message = fields.String(allow_none=True)
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)


class ConnectionOut(Schema):
    id = fields.Integer()
    platform = fields.String()
    status = fields.String()
    status_reason = fields.String(allow_none=True)
    store_base_url = fields.String(allow_none=True)
    callback_url = fields.String()
    identity_link_url = fields.String()
    progress = fields.Nested(Progress, allow_none=True)
    last_run = fields.Nested(RunOut, allow_none=True)
