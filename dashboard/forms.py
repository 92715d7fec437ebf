"""Forms of the dashboard's manual-input page: file uploads, the confirm step and sentiment readings."""
from __future__ import annotations

from decimal import Decimal

from django import forms
from django.utils import timezone


class UploadForm(forms.Form):
    """Accept one JSON file; its content is checked by market.manual, not here."""

    file = forms.FileField(allow_empty_file=True,
                           widget=forms.ClearableFileInput(attrs={"accept": ".json,application/json"}))


class ConfirmForm(forms.Form):
    """Confirm the previewed file, named by its SHA-256 so a stale page cannot save another file."""

    sha256 = forms.RegexField(regex=r"^[0-9a-f]{64}$", widget=forms.HiddenInput)


class SentimentForm(forms.Form):
    """Validate one sentiment reading; known_at defaults to now and may not be later."""

    asset = forms.RegexField(regex=r"^[A-Za-z0-9]{1,8}$", initial="BTC", max_length=8)
    score = forms.DecimalField(min_value=Decimal("-1"), max_value=Decimal("1"), max_digits=4, decimal_places=3,
                               help_text="-1 fear ... +1 greed",
                               widget=forms.NumberInput(attrs={"step": "0.001", "min": "-1", "max": "1"}))
    source = forms.CharField(max_length=64)
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    # ISO 8601; a time without an offset is read as UTC (the project's TIME_ZONE).
    known_at = forms.DateTimeField(required=False, help_text="UTC; empty = now")
    valid_until = forms.DateTimeField(required=False, help_text="UTC; empty = until superseded")

    def clean(self):
        data = super().clean()
        known_at, valid_until = data.get("known_at"), data.get("valid_until")
        if known_at and known_at > timezone.now():
            self.add_error("known_at", "known_at is in the future; it may be earlier than now, never later")
        if valid_until and valid_until <= (known_at or timezone.now()):
            self.add_error("valid_until", "valid_until must be after known_at")
        return data
