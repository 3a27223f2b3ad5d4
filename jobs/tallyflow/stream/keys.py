"""Keyed streams for the Python operators, keyed in the JVM (jobs/jvm PythonKeys).

PyFlink's `key_by(lambda ...)` runs a Python operator on every record only to compute its key, and
costs about a thousand py4j round trips to build. PythonKeys emits the same (key, record) rows and
the same key (the fields' text joined by U+001F), so the keyed functions and their state are as
before; a field written `name:n` keys by its first n characters.
"""

from __future__ import annotations

from typing import Any


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


def where(stream: Any, name: str, field: str, value: str) -> Any:
    """The rows of `stream` whose text `field` is `value`, filtered in the JVM."""
    from pyflink.datastream import DataStream
    from pyflink.java_gateway import get_gateway

    return DataStream(get_gateway().jvm.io.tallyflow.keys.PythonKeys.where(stream._j_data_stream, name, field, value))
