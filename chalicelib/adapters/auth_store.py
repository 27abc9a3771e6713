"""The auth table (tables.AuthRow): clients and roles, every write conditional.

Creating is a put on an id not yet taken; updating and deleting are guarded by the row existing;
a failed condition is reported as the domain's 409/404, never retried here. Each write is that one
conditional put: two creates racing for an id store exactly one of them, and the other is told 409
having stored nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime

from pynamodb.exceptions import PutError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action

from ..domain.credentials import Client, Role
from ..domain.errors import RequestConflict, ResourceNotFound
from ..domain.model import format_date, parse_date
from .items import check_fits
from .pagination import decode_token, equal, next_token, prefixed
from .tables import AuthRow

CONDITION_FAILED = "ConditionalCheckFailedException"
CLIENT, ROLE = "client", "role"
# The request schemas' caps (1,000 scopes of 1,000 characters) allow rows past DynamoDB's item
# limit, which no real client or role comes near: such a row is refused as input (check_fits).


def _failed_condition(err: Exception) -> bool:
    return getattr(err, "cause_response_code", None) == CONDITION_FAILED


def _client(row: AuthRow) -> Client:
    return Client(
        client_id=row.id,
        description=row.description,
        scopes=tuple(json.loads(row.scopes)),
        expires=parse_date(row.expires or row.created),
        created=parse_date(row.created),
        last_modified=parse_date(row.lastModified),
        last_rotated=parse_date(row.lastRotated or row.created),
        seed=row.seed or "",
        disabled=bool(row.disabled),
        delete_on_expiration=bool(row.deleteOnExpiration),
    )


def _role(row: AuthRow) -> Role:
    return Role(
        role_id=row.id,
        description=row.description,
        scopes=tuple(json.loads(row.scopes)),
        created=parse_date(row.created),
        last_modified=parse_date(row.lastModified),
    )


class DynamoAuthStore:
    def __init__(self, model: type[AuthRow]) -> None:
        self.model = model

    # --- clients --------------------------------------------------------------------------------
    def get_client(self, client_id: str) -> Client | None:
        try:
            return _client(self.model.get(CLIENT, client_id, consistent_read=True))
        except self.model.DoesNotExist:
            return None

    def put_client(self, client: Client, *, create: bool, seed_was: str | None = None) -> None:
        """`seed_was`: the seed the update was read with, which must still be stored (or 409): an
        update writing it back over a concurrent reset would bring the old access token back."""
        row = self.model(
            CLIENT,
            client.client_id,
            description=client.description,
            scopes=json.dumps(list(client.scopes)),
            created=format_date(client.created),
            lastModified=format_date(client.last_modified),
            expires=format_date(client.expires),
            seed=client.seed,
            lastRotated=format_date(client.last_rotated),
            disabled=client.disabled,
            deleteOnExpiration=client.delete_on_expiration,
            ttl=_ttl(client.expires) if client.delete_on_expiration else None,
        )
        unchanged = self.model.seed == seed_was if seed_was else None
        self._save(row, "Client", create, unchanged)

    def rotate_seed(self, client_id: str, seed_was: str, seed: str, when: datetime) -> Client:
        """A new seed (a new access token), only if `seed_was` is still stored (or 409: of two racing
        resets, one would hand out a token already dead). Only the seed and its dates are written, so
        an update made meanwhile stands."""
        row = self.model(CLIENT, client_id)
        actions: list[Action] = [
            self.model.seed.set(seed),
            self.model.lastRotated.set(format_date(when)),
            self.model.lastModified.set(format_date(when)),
        ]
        try:
            row.update(actions=actions, condition=self.model.id.exists() & (self.model.seed == seed_was))
        except UpdateError as err:
            if not _failed_condition(err):
                raise
            raise self._lost_race(row, "Client") from None
        return _client(row)

    def delete_client(self, client_id: str) -> None:
        self._delete(CLIENT, client_id)

    def list_clients(self, prefix: str, limit: int, token: str | None) -> tuple[list[Client], str | None]:
        condition = self.model.id.startswith(prefix) if prefix else None
        start = decode_token(token, {"kind", "id"}, {"kind": equal(CLIENT), "id": prefixed(prefix)})
        rows = self.model.query(CLIENT, condition, limit=limit, last_evaluated_key=start, consistent_read=True)
        found = [_client(r) for r in rows]
        return found, next_token(rows.last_evaluated_key, len(found), limit)

    # --- roles ----------------------------------------------------------------------------------
    def get_role(self, role_id: str) -> Role | None:
        try:
            return _role(self.model.get(ROLE, role_id, consistent_read=True))
        except self.model.DoesNotExist:
            return None

    def put_role(self, role: Role, *, create: bool) -> None:
        row = self.model(
            ROLE,
            role.role_id,
            description=role.description,
            scopes=json.dumps(list(role.scopes)),
            created=format_date(role.created),
            lastModified=format_date(role.last_modified),
        )
        self._save(row, "Role", create)

    def delete_role(self, role_id: str) -> None:
        self._delete(ROLE, role_id)

    def all_roles(self) -> Iterator[Role]:
        return (_role(r) for r in self.model.query(ROLE, consistent_read=True))

    # --- shared ---------------------------------------------------------------------------------
    def _save(self, row: AuthRow, what: str, create: bool, unchanged: Condition | None = None) -> None:
        check_fits(row, f"{what} {row.id}")
        condition = self.model.id.does_not_exist() if create else self.model.id.exists()
        if unchanged is not None:
            condition &= unchanged
        try:
            row.save(condition=condition)
        except PutError as err:
            if not _failed_condition(err):
                raise
            if create:
                raise RequestConflict(f"{what} {row.id} already exists") from None
            raise self._lost_race(row, what) from None

    def _lost_race(self, row: AuthRow, what: str) -> ResourceNotFound | RequestConflict:
        """A conditional write on an existing row failed: the row is gone, or changed meanwhile."""
        if not self.model.count(row.kind, self.model.id == row.id, consistent_read=True):
            return ResourceNotFound(f"{what} {row.id} not found")
        return RequestConflict(f"{what} {row.id} changed while this request ran; try again")

    def _delete(self, kind: str, item_id: str) -> None:
        """Idempotent, as Taskcluster's deleteClient/deleteRole: deleting what is gone succeeds."""
        self.model(kind, item_id).delete()


def _ttl(expires: datetime) -> int:
    return int(expires.timestamp())
