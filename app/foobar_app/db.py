"""Database access through a small read/write router: writes go to the primary, reads are spread
round robin over the read pool (the primary alone until a replica joins it)."""

from __future__ import annotations

import itertools
import threading
from contextlib import contextmanager

import pymysql

from .config import Config, DBNode


class Router:
    """Hands out connections: `writer()` to the primary, `reader()` to the next read pool node.

    config: the app's Config.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self._next = itertools.cycle(range(len(config.read_pool)))
        self._lock = threading.Lock()

    def _connect(self, node: DBNode):
        c = self.config
        return pymysql.connect(
            host=node.host,
            port=node.port,
            user=c.db_user,
            password=c.db_password,
            database=c.db_name,
            connect_timeout=c.connect_timeout,
            read_timeout=10,
            write_timeout=10,
            autocommit=True,
            cursorclass=pymysql.cursors.DictCursor,
            charset="utf8mb4",
        )

    @contextmanager
    def writer(self):
        """Yield (connection, node name) to the primary."""
        conn = self._connect(self.config.primary)
        try:
            yield conn, _node_name(conn)
        finally:
            conn.close()

    @contextmanager
    def reader(self):
        """Yield (connection, node name) to the next node of the read pool."""
        with self._lock:
            index = next(self._next)
        conn = self._connect(self.config.read_pool[index])
        try:
            yield conn, _node_name(conn)
        finally:
            conn.close()


def _node_name(conn) -> str:
    with conn.cursor() as cur:
        cur.execute("SELECT @@hostname AS h")
        return cur.fetchone()["h"]
