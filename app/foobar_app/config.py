"""Configuration from the environment (systemd loads /etc/foobar/app.env, rendered by the app role)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class DBNode:
    """One database server."""

    host: str
    port: int = 3306

    @classmethod
    def parse(cls, text: str) -> "DBNode":
        host, _, port = text.strip().partition(":")
        return cls(host, int(port or 3306))


@dataclass(frozen=True)
class Config:
    """The app's settings.

    served_by: the name this server reports in X-Served-By.
    release: the release id being served.
    primary: the database node that takes writes.
    read_pool: the nodes reads are spread over.
    """

    served_by: str
    release: str
    primary: DBNode
    read_pool: tuple[DBNode, ...]
    db_name: str
    db_user: str
    db_password: str
    connect_timeout: float = 2.0

    @classmethod
    def from_env(cls, env=os.environ) -> "Config":
        primary = DBNode.parse(env.get("FOOBAR_DB_PRIMARY", "127.0.0.1:3306"))
        pool = tuple(DBNode.parse(p) for p in env.get("FOOBAR_DB_READ", "").split(",") if p.strip())
        return cls(
            served_by=env.get("FOOBAR_SERVED_BY") or socket.gethostname(),
            release=env.get("FOOBAR_RELEASE", "dev"),
            primary=primary,
            read_pool=pool or (primary,),
            db_name=env.get("FOOBAR_DB_NAME", "foobar"),
            db_user=env.get("FOOBAR_DB_USER", "foobar"),
            db_password=env.get("FOOBAR_DB_PASSWORD", ""),
            connect_timeout=float(env.get("FOOBAR_DB_CONNECT_TIMEOUT", "2")),
        )
