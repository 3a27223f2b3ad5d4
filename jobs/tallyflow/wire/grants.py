"""Credit grants (top-ups) on the wire: Confluent-framed Avro, schemas/credit_grant.v1.avsc."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from tallyflow.core.credit_state import GrantRecord, epoch_ms, validate_grant
from tallyflow.wire import avro

SUBJECT = "credit-grant"


def encode_grant(g: GrantRecord) -> bytes:
    version = avro.latest(SUBJECT)
    return avro.encode(
        {
            "grant_id": g.grant_id,
            "customer_id": g.customer,
            "credits": g.credits,
            "priority": g.priority,
            "effective_at": datetime.fromtimestamp(g.effective_at // 1000, UTC),
            "expires_at": None if g.expires_at is None else datetime.fromtimestamp(g.expires_at // 1000, UTC),
        },
        version,
    )


def decode_grant(data: bytes) -> GrantRecord:
    """Raises ValueError with the reason for anything that is not a valid grant."""
    try:
        r = avro.decode(data, subject=SUBJECT)
    except ValueError:
        raise
    except Exception as e:  # fastavro raises EOFError, StopIteration, UnicodeDecodeError...
        raise ValueError(f"malformed Avro: {type(e).__name__}: {e}") from None
    expires = r.get("expires_at")
    g = GrantRecord(
        r["customer_id"],
        r["grant_id"],
        Decimal(r["credits"]),
        int(r["priority"]),
        epoch_ms(r["effective_at"]),
        None if expires is None else epoch_ms(expires),
    )
    reason = validate_grant(g)
    if reason:
        raise ValueError(reason)
    return g
