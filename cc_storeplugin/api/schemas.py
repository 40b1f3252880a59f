"""marshmallow schemas for every JSON body the API takes or gives."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from cc_storeplugin.models.sync import ERROR_REASONS


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


class ListOut(Schema):
    key = fields.String()
    name = fields.String()
    kind = fields.String()
    cc_list_id = fields.String(allow_none=True)
    members_in_store = fields.Integer()
    members_in_cc = fields.Integer(allow_none=True)


class ErrorsQuery(Schema):
    """Query string of GET /connections/<id>/errors."""

    reason = fields.String(validate=validate.OneOf(list(ERROR_REASONS)))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    before = fields.Integer(validate=validate.Range(min=1))


class ErrorOut(Schema):
    id = fields.Integer()
    run_id = fields.Integer()
    record_type = fields.String()
    record_ref = fields.String()
    reason = fields.String()
    message = fields.String()
    created_at = fields.DateTime()
