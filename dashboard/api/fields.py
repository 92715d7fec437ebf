"""Serializer fields shared by the API: exact money and prices as text, times as ISO-8601 UTC."""
from datetime import UTC, datetime
from decimal import MAX_PREC, Context, Decimal

from django.core.exceptions import FieldDoesNotExist
from rest_framework import serializers

# normalize() rounds to its context's precision (28 digits by default): a DECIMAL(32, 10) quantity
# may hold 32. This context never rounds.
_EXACT = Context(prec=MAX_PREC)


def plain(value: Decimal | None) -> str | None:
    """Return a Decimal as fixed-point text without trailing zeros ("65000", "0.015"), or None."""
    # normalize() alone prints 65000 as 6.5E+4; "f" keeps it positional and exact.
    return None if value is None else format(value.normalize(_EXACT), "f")


def iso_utc(moment: datetime | None) -> str | None:
    """Return an aware time as ISO-8601 UTC with a Z, as DRF prints times ("2024-03-01T12:00:00Z")."""
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class DecimalText(serializers.DecimalField):
    """A Decimal read and written as a string, printed without trailing zeros: never a float."""

    def __init__(self, max_digits: int = 28, decimal_places: int = 10, **kwargs):
        kwargs.setdefault("coerce_to_string", True)
        super().__init__(max_digits=max_digits, decimal_places=decimal_places, **kwargs)

    def to_representation(self, value):
        if value is None:
            return None
        return plain(Decimal(value))


_AS_STORED = (serializers.CharField, serializers.ChoiceField, serializers.IntegerField, serializers.BooleanField,
              serializers.FloatField, serializers.JSONField)


class FastListSerializer(serializers.ListSerializer):
    """Render a page of model rows with the child serializer's fields, without DRF's per-field machinery.

    A page of 500 candles takes about 100 ms field by field and a tenth of that here: plain model
    columns are read once and converted by type (Decimal as exact text, time as ISO-8601 UTC, a
    foreign key as its id); any other field falls back to its own to_representation.
    """

    def to_representation(self, data):
        readers = field_readers(type(self.child), self.child)
        rows = list(data.all() if hasattr(data, "all") else data)
        if rows and isinstance(rows[0], dict):
            # Rows from .values(*value_lookups(...)): one dict lookup per cell, keyed by the lookup.
            columns = [(name, "__".join(attrs), convert) for name, attrs, convert in readers]
            return [{name: None if (value := row[key]) is None else convert(value) for name, key, convert in columns}
                    for row in rows]
        return [{name: _read(row, attrs, convert) for name, attrs, convert in readers} for row in rows]


_LOOKUPS: dict[type, tuple[str, ...] | None] = {}


def value_lookups(serializer_class: type) -> tuple[str, ...] | None:
    """Return the .values() lookups a page of `serializer_class` rows reads, or None when it needs instances.

    A ModelSerializer listed through FastListSerializer whose every field is a stored column of the
    model or of a model its foreign keys point to (`instrument.exchange_symbol`) can be fed plain
    dicts: building 50 model instances with JSON columns costs more than the query.
    """
    if serializer_class not in _LOOKUPS:
        meta = getattr(serializer_class, "Meta", None)
        lookups = None
        if meta is not None and getattr(meta, "list_serializer_class", None) is FastListSerializer:
            readers = field_readers(serializer_class, serializer_class())
            # A converter of its own (a file's URL, a slug of a related row) needs the instance's value.
            if all(convert in _VALUE_CONVERTERS and _is_column(meta.model, attrs) for _, attrs, convert in readers):
                lookups = tuple("__".join(attrs) for _, attrs, _ in readers)
        _LOOKUPS[serializer_class] = lookups
    return _LOOKUPS[serializer_class]


def _is_column(model, attrs: list[str]) -> bool:
    """True when the attribute path names a stored column, through forward foreign keys only."""
    for position, attr in enumerate(attrs):
        try:
            field = model._meta.get_field(attr)
        except FieldDoesNotExist:
            return False
        if position == len(attrs) - 1:
            # A relation is a column only as its id (`instrument_id`); by name it is a related row.
            return field.concrete and (not field.is_relation or attr != field.name)
        if not (field.many_to_one or field.one_to_one) or not field.concrete:
            return False
        model = field.related_model
    return False


_READERS: dict[type, list] = {}


def field_readers(serializer_class: type, child) -> list[tuple[str, list[str], callable]]:
    """Return (name, attribute path, converter) of every field `child` (a `serializer_class`) prints."""
    # Building a ModelSerializer's fields deep-copies them (about 7 ms a page): once per class is enough.
    readers = _READERS.get(serializer_class)
    if readers is None:
        readers = [(name, *_reader(field)) for name, field in child.fields.items() if not field.write_only]
        _READERS[serializer_class] = readers
    return readers


def _reader(field) -> tuple[list[str], callable]:
    attrs = list(field.source_attrs)
    if isinstance(field, serializers.PrimaryKeyRelatedField) and len(attrs) == 1:
        return [f"{attrs[0]}_id"], _same
    if isinstance(field, DecimalText):
        return attrs, plain
    if isinstance(field, serializers.DateTimeField):
        return attrs, iso_utc
    if isinstance(field, _AS_STORED):
        return attrs, _same
    return attrs, field.to_representation


def _read(row, attrs: list[str], convert):
    for attr in attrs:
        row = getattr(row, attr, None)
        if row is None:
            return None
    return convert(row)


def _same(value):
    return value


_VALUE_CONVERTERS = (_same, plain, iso_utc)
