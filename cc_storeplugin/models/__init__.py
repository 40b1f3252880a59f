"""The data model, one module per area; importing this package registers every table."""

from cc_storeplugin.models.base import Base, utcnow
from cc_storeplugin.models.consent import ConsentEvent, LedgerIsAppendOnly
from cc_storeplugin.models.customers import Cart, Customer, Order, OrderItem, normalize_email
from cc_storeplugin.models.merchants import Merchant
from cc_storeplugin.models.segments import Segment, SegmentMembership, SegmentTransition
from cc_storeplugin.models.staging import CustomerStage, OrderStage
from cc_storeplugin.models.stores import StoreConnection
from cc_storeplugin.models.sync import StoreEvent, SyncError, SyncRun

__all__ = [
    "Base",
    "Cart",
    "ConsentEvent",
    "Customer",
    "LedgerIsAppendOnly",
    "Merchant",
    "Order",
    "OrderItem",
    "CustomerStage",
    "OrderStage",
    "Segment",
    "SegmentMembership",
    "SegmentTransition",
    "StoreConnection",
    "StoreEvent",
    "SyncError",
    "SyncRun",
    "normalize_email",
    "utcnow",
]
