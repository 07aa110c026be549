"""JSON text that a JSONField stores as it is: notes encoded once for the WebSocket message are
not encoded again for the database (a 2,312-note take is ~8 ms of json.dumps each time, ~0.8 ms
of orjson's)."""
from __future__ import annotations

import json

import orjson


class EncodedJSON(str):
    """A str that holds a JSON document already encoded (the caller vouches for it)."""


class EncodedJSONEncoder(json.JSONEncoder):
    """The encoder of JSONFields that accept `EncodedJSON`: such a value is written unchanged,
    anything else is encoded as usual. Reads give the decoded value, as for any JSONField."""

    def encode(self, o):
        if isinstance(o, EncodedJSON):
            return str(o)
        return super().encode(o)


def json_text(value) -> str:
    """Compact JSON of ``value`` (dicts, lists, str, int, float; non-str keys or NaN raise
    TypeError / give null as orjson does), as the web contract's messages are sent."""
    return orjson.dumps(value).decode()
