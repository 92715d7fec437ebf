"""Atomic persistence of the emulated account to one JSON file."""
from __future__ import annotations

import json
import os
from pathlib import Path

from execution.emulator.state import AccountState, from_jsonable, to_jsonable

FORMAT_VERSION = 1


def save(path: Path, state: AccountState) -> None:
    """Write `state` to `path` atomically: a crash leaves the old file or the new one, never half."""
    tmp = path.with_name(path.name + ".tmp")
    payload = {"version": FORMAT_VERSION, "account": to_jsonable(state)}
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, separators=(",", ":"))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def load(path: Path) -> AccountState | None:
    """Return the state saved at `path`, or None when there is no file yet."""
    if not path.is_file():
        return None
    payload = json.loads(path.read_text(encoding="utf-8"))
    if payload.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported emulator state version {payload.get('version')!r}")
    return from_jsonable(AccountState, payload["account"])
