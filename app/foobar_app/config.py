"""Configuration from the environment (systemd loads /etc/foobar/app.env, rendered by the app role)."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class DBNode:
    """One database server.

    name: its name (the inventory host name; X-DB-Node reports it).
    host, port: where it listens.
    weight: its share of reads (0: never read from unless nothing else can serve).
    """

    name: str
    host: str
    port: int = 3306
    weight: int = 1

    @classmethod
    def parse(cls, text: str) -> DBNode:
        """Parse NAME=HOST:PORT:WEIGHT (PORT and WEIGHT optional; without NAME=, the name is HOST)."""
        text = text.strip()
        name, sep, rest = (part.strip() for part in text.partition("="))
        if not sep:
            name, rest = "", text
        host, _, tail = (part.strip() for part in rest.partition(":"))
        port, _, weight = (part.strip() for part in tail.partition(":"))
        if not host:
            raise ValueError(f"database node {text!r}: no host")
        return cls(name or host, host, int(port or 3306), int(weight or 1))


@dataclass(frozen=True)
class Config:
    """The app's settings.

    served_by: the name this server reports in X-Served-By.
    release: the release id being served.
    nodes: every database node; which one is the primary is found at run time (the one that is
        writable and not replicating), so a switchover needs no restart.
    db_name, db_user, db_password: the app's database and account.
    connect_timeout: seconds to connect to a node.
    max_lag: a replica further behind than this many seconds leaves the read pool.
    check_interval: seconds between checks of every node.
    pool_size: idle connections kept per node.
    check_timeout: seconds a node's check may take to connect (a node that does not answer is down).
    """

    served_by: str
    release: str
    nodes: tuple[DBNode, ...]
    db_name: str
    db_user: str
    db_password: str
    connect_timeout: float = 2.0
    max_lag: float = 5.0
    check_interval: float = 1.0
    pool_size: int = 8
    check_timeout: float = 1.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Config:
        """Read the settings from environment variables (FOOBAR_*)."""
        nodes = tuple(DBNode.parse(p) for p in env.get("FOOBAR_DB_NODES", "").split(",") if p.strip())
        if not nodes:  # a single server named by address only
            nodes = (DBNode.parse(env.get("FOOBAR_DB_PRIMARY", "127.0.0.1:3306")),)
        names = [n.name for n in nodes]
        if len(set(names)) != len(names):
            raise ValueError(f"FOOBAR_DB_NODES names a node twice: {', '.join(names)}")
        return cls(
            served_by=env.get("FOOBAR_SERVED_BY") or socket.gethostname(),
            release=env.get("FOOBAR_RELEASE", "dev"),
            nodes=nodes,
            db_name=env.get("FOOBAR_DB_NAME", "foobar"),
            db_user=env.get("FOOBAR_DB_USER", "foobar"),
            db_password=env.get("FOOBAR_DB_PASSWORD", ""),
            connect_timeout=float(env.get("FOOBAR_DB_CONNECT_TIMEOUT", "2")),
            max_lag=float(env.get("FOOBAR_DB_MAX_LAG", "5")),
            check_interval=float(env.get("FOOBAR_DB_CHECK_INTERVAL", "1")),
            pool_size=int(env.get("FOOBAR_DB_POOL_SIZE", "8")),
            check_timeout=float(env.get("FOOBAR_DB_CHECK_TIMEOUT", "1")),
        )
