"""JSON rendering of the API with pre-rendered parts: a page of rows can arrive as finished JSON text.

Why: json.dumps of 500 candles or 1,000 equity points costs 2-4 ms a request, and the text can be
made once, cheaper (the candle rows come formatted from the database, an equity curve's points are
rendered once per computed curve). `RawJSON` carries such text inside the response data;
`SplicingJSONRenderer` renders everything else as DRF's JSONRenderer does and puts the text in
place: what a client parses is what JSONRenderer would have produced from the parsed value.
"""
from __future__ import annotations

import json
import uuid

from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer

# A per-process marker: a string no client data can hold by chance.
_MARK = f"\x00raw-json-{uuid.uuid4().hex}-"


class RawJSON:
    """Finished JSON text standing for one value of the response.

    The text must be JSON that parses to that value. The candle rows and equity points are exactly
    what JSONRenderer writes (compact, ASCII); the list pages MariaDB writes (dashboard.api.row_json)
    may differ in bytes where the value does not (a stored JSON column keeps its spaces and escapes).
    """

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def value(self):
        """The parsed value, for the places that need Python data (the browsable API's indented view)."""
        return json.loads(self.text)


class SplicingJSONRenderer(JSONRenderer):
    """JSONRenderer that accepts RawJSON values at the top level of a dict (a page's `results`)."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, dict) and any(isinstance(v, RawJSON) for v in data.values()):
            return self._splice(data, accepted_media_type, renderer_context)
        return super().render(data, accepted_media_type, renderer_context)

    def _splice(self, data: dict, accepted_media_type, renderer_context) -> bytes:
        if self.get_indent(accepted_media_type, renderer_context or {}) is not None:
            # Indented output (the browsable API): render the parsed values the ordinary way.
            plain = {k: v.value() if isinstance(v, RawJSON) else v for k, v in data.items()}
            return super().render(plain, accepted_media_type, renderer_context)
        raws, marked = {}, {}
        for key, value in data.items():
            if isinstance(value, RawJSON):
                marker = f"{_MARK}{len(raws)}"
                raws[json.dumps(marker).encode()] = value.text.encode()
                value = marker
            marked[key] = value
        rendered = super().render(marked, accepted_media_type, renderer_context)
        for marker, text in raws.items():
            rendered = rendered.replace(marker, text, 1)
        return rendered


# What the views that return RawJSON render with: JSON for scripts, the browsable API for people,
# as the project's default renderer classes.
RENDERERS = [SplicingJSONRenderer, BrowsableAPIRenderer]
