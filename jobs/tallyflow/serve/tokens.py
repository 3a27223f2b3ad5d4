"""Bearer tokens for the API: one customer each, stored hashed (SHA-256) in
$TALLYFLOW_HOME/tokens.json (mode 0600). A token is shown once, when it is created; what is stored
cannot give it back. TALLYFLOW_ADMIN_TOKEN (or TALLYFLOW_ADMIN_TOKEN_FILE) is the operator's
token, which reads every customer."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tallyflow import private_files
from tallyflow.core import events
from tallyflow.errors import UserError
from tallyflow.settings import Settings

ADMIN = "*"  # the scope of the admin token


@dataclass(frozen=True)
class Grant:
    """Who a presented token is: a customer's scope, the admin's, or a revoked token."""

    scope: str | None  # customer id, ADMIN, or None when revoked
    token_id: str


def _path(settings: Settings) -> Path:
    return settings.home / "tokens.json"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


_loaded: dict[Path, tuple[tuple[int, int], dict[str, dict]]] = {}


def _read(settings: Settings) -> dict[str, dict]:
    """The store, read again only when the file changed (the API asks on every request)."""
    path = _path(settings)
    try:
        st = path.stat()
    except FileNotFoundError:
        return {}
    stamp = (st.st_mtime_ns, st.st_size)
    cached = _loaded.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    try:
        store = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: not a token store ({e})") from None
    _loaded[path] = (stamp, store)
    return store


def _write(settings: Settings, store: dict[str, dict]) -> None:
    path = _path(settings)
    _loaded.pop(path, None)
    private_files.write(path, json.dumps(store, indent=1, sort_keys=True))


def create(settings: Settings, customer: str, known: set[str] | None = None) -> dict:
    """A new token reading `customer` only. `known`: the catalog's customers, which the customer
    must be one of (None: not checked, `--force`). No id can be a scope wildcard."""
    problem = events.id_problem("--customer", customer)
    if problem:
        raise UserError(problem)
    if customer == ADMIN:
        raise UserError(f"--customer '{ADMIN}' is the admin scope, never a customer's (TALLYFLOW_ADMIN_TOKEN is that)")
    if known is not None and customer not in known:
        raise UserError(
            f"no customer '{customer}' in the catalog in force (check the id; --force creates the token anyway)"
        )
    token_id = secrets.token_hex(4)
    token = f"tf_{token_id}_{secrets.token_urlsafe(24)}"
    store = dict(_read(settings))
    store[_digest(token)] = {
        "id": token_id,
        "customer": customer,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "revoked_at": None,
    }
    _write(settings, store)
    return {"token": token, "id": token_id, "customer": customer}


def revoke(settings: Settings, token_or_id: str) -> dict:
    store = dict(_read(settings))
    wanted = _digest(token_or_id)
    for digest, entry in store.items():
        if digest == wanted or entry["id"] == token_or_id:
            entry["revoked_at"] = entry["revoked_at"] or datetime.now(UTC).isoformat(timespec="seconds")
            _write(settings, store)
            return {"id": entry["id"], "customer": entry["customer"], "revoked_at": entry["revoked_at"]}
    raise UserError(f"no token {token_or_id[:12]}... (give the token or its id from `tallyflow token list`)")


def listing(settings: Settings) -> list[dict]:
    return sorted(_read(settings).values(), key=lambda e: e["created_at"])


def resolve(settings: Settings, token: str) -> Grant | None:
    """The grant of a presented token; None when it is not one of ours."""
    if settings.admin_token and hmac.compare_digest(token.encode(), settings.admin_token.encode()):
        return Grant(ADMIN, "admin")
    entry = _read(settings).get(_digest(token))
    if entry is None or entry.get("customer") == ADMIN:  # a customer's token never reads all
        return None
    return Grant(None if entry["revoked_at"] else entry["customer"], entry["id"])
