"""Keyed streams for the Python operators, keyed in the JVM (jobs/jvm PythonKeys).

PyFlink's `key_by(lambda ...)` runs a Python operator on every record only to compute its key, and
costs about a thousand py4j round trips to build. PythonKeys emits the same (key, record) rows and
the same key (the fields' text joined by U+001F), so the keyed functions and their state are as
before; a field written `name:n` keys by its first n characters.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

SEPARATOR = "\u001f"  # between the fields of a key (PythonKeys.SEPARATOR)


def keyed(stream: Any, name: str, *fields: str) -> Any:
    """`stream` keyed by these fields, through a JVM operator named and uid'd `name`."""
    from pyflink.datastream.data_stream import KeyedStream
    from pyflink.java_gateway import get_gateway
    from pyflink.util.java_utils import to_jarray

    gateway = get_gateway()
    j_keyed = gateway.jvm.io.tallyflow.keys.PythonKeys.keyed(
        stream._j_data_stream, name, to_jarray(gateway.jvm.String, list(fields))
    )
    # The original type is only read by KeyedStream's map/reduce helpers, which the job never uses.
    return KeyedStream(j_keyed, None, stream)


def among(stream: Any, name: str, fields: tuple[str, ...], allowed: Iterable[tuple[str, ...]]) -> Any:
    """The rows of `stream` whose `fields` are one of the `allowed` tuples, filtered in the JVM."""
    from pyflink.datastream import DataStream
    from pyflink.java_gateway import get_gateway
    from pyflink.util.java_utils import to_jarray

    gateway = get_gateway()
    keys = sorted(SEPARATOR.join(values) for values in allowed)
    return DataStream(
        gateway.jvm.io.tallyflow.keys.PythonKeys.among(
            stream._j_data_stream,
            name,
            to_jarray(gateway.jvm.String, list(fields)),
            to_jarray(gateway.jvm.String, keys),
        )
    )
