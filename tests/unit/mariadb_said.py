"""What a MariaDB node says of itself and of its replication, as the facts read it: built once
for the unit tests of the states, the status and the role changes."""

from __future__ import annotations

MARIADB = "10.11.6-MariaDB-0+deb12u1-log"


def node(read_only: bool = True, binlog: str = "", schemas: int = 0, version: str = MARIADB) -> dict[str, str]:
    """What a node says of itself (LOCAL_SQL)."""
    return {
        "server_id": "12",
        "read_only": "1" if read_only else "0",
        "version": version,
        "gtid_binlog_pos": binlog,
        "gtid_binlog_state": binlog,
        "gtid_slave_pos": "",
        "gtid_current_pos": binlog,
        "log_bin": "1",
        "user_schemas": str(schemas),
    }


def slave(host: str = "10.77.0.11", io: str = "Yes", sql: str = "Yes", using: str = "Slave_Pos", **more: str) -> dict:
    """SHOW SLAVE STATUS (the columns the states and the status read)."""
    return {
        "Master_Host": host,
        "Slave_IO_Running": io,
        "Slave_SQL_Running": sql,
        "Using_Gtid": using,
        "Seconds_Behind_Master": "0" if io == sql == "Yes" else "NULL",
        "Gtid_IO_Pos": "0-11-42",
        "Last_SQL_Errno": "0",
        "Last_SQL_Error": "",
        "Last_IO_Error": "",
        **more,
    }
