"""Publishing a credit grant (top-up) to the grants topic (`tallyflow grant`)."""

from __future__ import annotations

from datetime import UTC, datetime

from tallyflow.core.credit_state import GrantRecord, epoch_ms, validate_grant
from tallyflow.errors import UserError
from tallyflow.settings import Settings
from tallyflow.wire import kafka_config, topics
from tallyflow.wire.grants import encode_grant


def parse_time(text: str, what: str) -> int:
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"{what} '{text}' is not an ISO 8601 time") from None
    if t.tzinfo is None:
        raise UserError(f"{what} '{text}' needs an explicit offset (Z or +hh:mm)")
    return epoch_ms(t.astimezone(UTC))


def publish_grant(settings: Settings, g: GrantRecord) -> None:
    from confluent_kafka import KafkaException, Producer

    reason = validate_grant(g)
    if reason:
        raise UserError(f"grant {g.grant_id}: {reason}")
    if not topics.broker_answers(settings, timeout=5.0):
        raise UserError(f"Kafka at {settings.bootstrap} does not answer; run `tallyflow stack up`")
    topics.require(settings, topics.GRANTS)
    producer = Producer(
        {
            **kafka_config.librdkafka(settings),
            "enable.idempotence": True,
            "acks": "all",
            "logger": topics.quiet_logger(),
        }
    )
    errors: list[str] = []
    producer.produce(
        settings.topic(topics.GRANTS),
        key=g.customer.encode(),
        value=encode_grant(g),
        on_delivery=lambda err, _msg: errors.append(str(err)) if err else None,
    )
    try:
        left = producer.flush(30)
    except KafkaException as e:
        raise UserError(f"publishing the grant failed: {e}") from None
    if left or errors:
        raise UserError(f"publishing the grant failed: {errors[0] if errors else 'not delivered in 30 s'}")
