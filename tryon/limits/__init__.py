"""Who a visitor is and what they may spend: quotas per visitor and the day's budget, in Redis so
every replica agrees (docs/DEPLOY.md)."""

from .ledger import Hold, Ledger
from .visitor import Visitor, client_address

__all__ = ["Hold", "Ledger", "Visitor", "client_address"]
