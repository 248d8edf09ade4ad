"""The bit sets of the protocol, as names for people: capability flags (MySQL's 32 and
MariaDB's extended ones), server status flags and column definition flags. A bit without
a name is written ``BIT_<n>``, so any value goes back to the same integer."""

from __future__ import annotations

CAPABILITIES = {
    "LONG_PASSWORD": 1 << 0,  # MariaDB: CLIENT_MYSQL (a client or server that is not MariaDB)
    "FOUND_ROWS": 1 << 1,
    "LONG_FLAG": 1 << 2,
    "CONNECT_WITH_DB": 1 << 3,
    "NO_SCHEMA": 1 << 4,
    "COMPRESS": 1 << 5,
    "ODBC": 1 << 6,
    "LOCAL_FILES": 1 << 7,
    "IGNORE_SPACE": 1 << 8,
    "PROTOCOL_41": 1 << 9,
    "INTERACTIVE": 1 << 10,
    "SSL": 1 << 11,
    "IGNORE_SIGPIPE": 1 << 12,
    "TRANSACTIONS": 1 << 13,
    "RESERVED": 1 << 14,
    "SECURE_CONNECTION": 1 << 15,
    "MULTI_STATEMENTS": 1 << 16,
    "MULTI_RESULTS": 1 << 17,
    "PS_MULTI_RESULTS": 1 << 18,
    "PLUGIN_AUTH": 1 << 19,
    "CONNECT_ATTRS": 1 << 20,
    "PLUGIN_AUTH_LENENC_CLIENT_DATA": 1 << 21,
    "CAN_HANDLE_EXPIRED_PASSWORDS": 1 << 22,
    "SESSION_TRACK": 1 << 23,
    "DEPRECATE_EOF": 1 << 24,
    "OPTIONAL_RESULTSET_METADATA": 1 << 25,
    "ZSTD_COMPRESSION_ALGORITHM": 1 << 26,
    "QUERY_ATTRIBUTES": 1 << 27,
    "MULTI_FACTOR_AUTHENTICATION": 1 << 28,
    "CAPABILITY_EXTENSION": 1 << 29,
    "SSL_VERIFY_SERVER_CERT": 1 << 30,
    "REMEMBER_OPTIONS": 1 << 31,
}
MARIADB_CAPABILITIES = {
    "PROGRESS": 1 << 0,
    "COM_MULTI": 1 << 1,
    "STMT_BULK_OPERATIONS": 1 << 2,
    "EXTENDED_TYPE_INFO": 1 << 3,
    "CACHE_METADATA": 1 << 4,
    "BULK_UNIT_RESULTS": 1 << 5,
}
STATUS = {
    "IN_TRANS": 1 << 0,
    "AUTOCOMMIT": 1 << 1,
    "MORE_RESULTS_EXISTS": 1 << 3,
    "NO_GOOD_INDEX_USED": 1 << 4,
    "NO_INDEX_USED": 1 << 5,
    "CURSOR_EXISTS": 1 << 6,
    "LAST_ROW_SENT": 1 << 7,
    "DB_DROPPED": 1 << 8,
    "NO_BACKSLASH_ESCAPES": 1 << 9,
    "METADATA_CHANGED": 1 << 10,
    "QUERY_WAS_SLOW": 1 << 11,
    "PS_OUT_PARAMS": 1 << 12,
    "IN_TRANS_READONLY": 1 << 13,
    "SESSION_STATE_CHANGED": 1 << 14,
}
COLUMN_FLAGS = {
    "NOT_NULL": 1 << 0,
    "PRI_KEY": 1 << 1,
    "UNIQUE_KEY": 1 << 2,
    "MULTIPLE_KEY": 1 << 3,
    "BLOB": 1 << 4,
    "UNSIGNED": 1 << 5,
    "ZEROFILL": 1 << 6,
    "BINARY": 1 << 7,
    "ENUM": 1 << 8,
    "AUTO_INCREMENT": 1 << 9,
    "TIMESTAMP": 1 << 10,
    "SET": 1 << 11,
    "NO_DEFAULT_VALUE": 1 << 12,
    "ON_UPDATE_NOW": 1 << 13,
    "PART_KEY": 1 << 14,
    "NUM": 1 << 15,
}

SSL = CAPABILITIES["SSL"]
COMPRESS = CAPABILITIES["COMPRESS"]
ZSTD = CAPABILITIES["ZSTD_COMPRESSION_ALGORITHM"]
PROTOCOL_41 = CAPABILITIES["PROTOCOL_41"]
CLIENT_MYSQL = CAPABILITIES["LONG_PASSWORD"]
CONNECT_WITH_DB = CAPABILITIES["CONNECT_WITH_DB"]
SECURE_CONNECTION = CAPABILITIES["SECURE_CONNECTION"]
PLUGIN_AUTH = CAPABILITIES["PLUGIN_AUTH"]
CONNECT_ATTRS = CAPABILITIES["CONNECT_ATTRS"]
AUTH_LENENC = CAPABILITIES["PLUGIN_AUTH_LENENC_CLIENT_DATA"]
SESSION_TRACK = CAPABILITIES["SESSION_TRACK"]
DEPRECATE_EOF = CAPABILITIES["DEPRECATE_EOF"]
OPTIONAL_METADATA = CAPABILITIES["OPTIONAL_RESULTSET_METADATA"]
QUERY_ATTRIBUTES = CAPABILITIES["QUERY_ATTRIBUTES"]
MARIADB_CACHE_METADATA = MARIADB_CAPABILITIES["CACHE_METADATA"]
MARIADB_EXTENDED_TYPE_INFO = MARIADB_CAPABILITIES["EXTENDED_TYPE_INFO"]
MORE_RESULTS = STATUS["MORE_RESULTS_EXISTS"]
CURSOR_EXISTS = STATUS["CURSOR_EXISTS"]
SESSION_STATE_CHANGED = STATUS["SESSION_STATE_CHANGED"]
UNSIGNED = COLUMN_FLAGS["UNSIGNED"]


def names(value: int, table: dict[str, int], width: int) -> list[str]:
    """The bits set in ``value``, by name, lowest first."""
    by_bit = {bit: name for name, bit in table.items()}
    return [by_bit.get(1 << i, f"BIT_{i}") for i in range(width) if value >> i & 1]


def value(bits: list[str] | int, table: dict[str, int]) -> int:
    """The integer of a list made by ``names`` (an int is taken as it is)."""
    if isinstance(bits, int):
        return bits
    out = 0
    for name in bits:
        out |= table[name] if name in table else 1 << int(name.removeprefix("BIT_"))
    return out
