"""PostgreSQL's own spelling of a column type, the one ``format_type(oid, typmod)`` gives:
from a type OID and modifier (as RowDescription and pg_attribute carry them), or from a
type name in DDL as pglast parses it. Pure, and built-in types only: a custom type's OID
differs from one database to the next, so its spelling is the caller's to keep.

The rules are format_type.c's and the types' typmodout functions' (PostgreSQL 15-18); the
tests compare them with a real server's.
"""

from __future__ import annotations

import re

from pglast import ast
from pglast.stream import RawStream

VARHDRSZ = 4
"""What char/varchar/numeric modifiers carry on top of the length (a varlena header)."""

# oid -> (typname, oid of its array type), from a PostgreSQL 15 server's pg_type: base,
# range and multirange types of pg_catalog that have an array type.
_TYPES: dict[int, tuple[str, int]] = {
    16: ("bool", 1000), 17: ("bytea", 1001), 18: ("char", 1002), 19: ("name", 1003),
    20: ("int8", 1016), 21: ("int2", 1005), 22: ("int2vector", 1006), 23: ("int4", 1007),
    24: ("regproc", 1008), 25: ("text", 1009), 26: ("oid", 1028), 27: ("tid", 1010),
    28: ("xid", 1011), 29: ("cid", 1012), 30: ("oidvector", 1013), 114: ("json", 199),
    142: ("xml", 143), 600: ("point", 1017), 601: ("lseg", 1018), 602: ("path", 1019),
    603: ("box", 1020), 604: ("polygon", 1027), 628: ("line", 629), 650: ("cidr", 651),
    700: ("float4", 1021), 701: ("float8", 1022), 718: ("circle", 719),
    774: ("macaddr8", 775), 790: ("money", 791), 829: ("macaddr", 1040),
    869: ("inet", 1041), 1033: ("aclitem", 1034), 1042: ("bpchar", 1014),
    1043: ("varchar", 1015), 1082: ("date", 1182), 1083: ("time", 1183),
    1114: ("timestamp", 1115), 1184: ("timestamptz", 1185), 1186: ("interval", 1187),
    1266: ("timetz", 1270), 1560: ("bit", 1561), 1562: ("varbit", 1563),
    1700: ("numeric", 1231), 1790: ("refcursor", 2201), 2202: ("regprocedure", 2207),
    2203: ("regoper", 2208), 2204: ("regoperator", 2209), 2205: ("regclass", 2210),
    2206: ("regtype", 2211), 2950: ("uuid", 2951), 2970: ("txid_snapshot", 2949),
    3220: ("pg_lsn", 3221), 3614: ("tsvector", 3643), 3615: ("tsquery", 3645),
    3642: ("gtsvector", 3644), 3734: ("regconfig", 3735), 3769: ("regdictionary", 3770),
    3802: ("jsonb", 3807), 3904: ("int4range", 3905), 3906: ("numrange", 3907),
    3908: ("tsrange", 3909), 3910: ("tstzrange", 3911), 3912: ("daterange", 3913),
    3926: ("int8range", 3927), 4072: ("jsonpath", 4073), 4089: ("regnamespace", 4090),
    4096: ("regrole", 4097), 4191: ("regcollation", 4192), 4451: ("int4multirange", 6150),
    4532: ("nummultirange", 6151), 4533: ("tsmultirange", 6152),
    4534: ("tstzmultirange", 6153), 4535: ("datemultirange", 6155),
    4536: ("int8multirange", 6157), 5038: ("pg_snapshot", 5039), 5069: ("xid8", 271),
}  # fmt: skip

# format_type's special cases: the SQL-standard names, used whatever the modifier.
_SQL_NAMES = {
    "bool": "boolean", "int2": "smallint", "int4": "integer", "int8": "bigint",
    "float4": "real", "float8": "double precision", "varchar": "character varying",
    "bpchar": "character", "varbit": "bit varying", "bit": "bit", "numeric": "numeric",
    "interval": "interval", "time": "time", "timetz": "time", "timestamp": "timestamp",
    "timestamptz": "timestamp",
}  # fmt: skip
_ZONE = {"time": " without time zone", "timetz": " with time zone",
         "timestamp": " without time zone", "timestamptz": " with time zone"}  # fmt: skip
# Without a modifier, these two are not what their SQL name means (character is
# character(1), bit is bit(1)), so format_type spells their own names.
_NO_MODIFIER = {"bpchar": "bpchar", "bit": '"bit"', "char": '"char"'}

_ELEMENT_OF = {array: oid for oid, (_, array) in _TYPES.items()}
_BY_NAME = {name: oid for oid, (name, _) in _TYPES.items()}
_BY_NAME.update({"_" + name: array for name, array in _TYPES.values()})
_SERIALS = {"smallserial": "int2", "serial2": "int2", "serial": "int4", "serial4": "int4",
            "bigserial": "int8", "serial8": "int8"}  # fmt: skip

# interval's field masks (datetime.h) -> how intervaltypmodout writes them
_YEAR, _MONTH, _DAY, _HOUR, _MINUTE, _SECOND = 1 << 2, 1 << 1, 1 << 3, 1 << 10, 1 << 11, 1 << 12
_INTERVAL_FIELDS = {
    0x7FFF: "", _YEAR: " year", _MONTH: " month", _DAY: " day", _HOUR: " hour",
    _MINUTE: " minute", _SECOND: " second", _YEAR | _MONTH: " year to month",
    _DAY | _HOUR: " day to hour", _DAY | _HOUR | _MINUTE: " day to minute",
    _DAY | _HOUR | _MINUTE | _SECOND: " day to second", _HOUR | _MINUTE: " hour to minute",
    _HOUR | _MINUTE | _SECOND: " hour to second", _MINUTE | _SECOND: " minute to second",
}  # fmt: skip
_MAX_SECONDS_PRECISION = 6


def format_type(type_oid: int, type_modifier: int) -> str | None:
    """What ``SELECT format_type(type_oid, type_modifier)`` says for a built-in type (and
    arrays of them); None for any other OID."""
    if type_oid in _ELEMENT_OF:
        element = format_type(_ELEMENT_OF[type_oid], type_modifier)
        return None if element is None else element + "[]"
    if type_oid not in _TYPES:
        return None
    name = _TYPES[type_oid][0]
    if type_modifier < 0:
        sql = _NO_MODIFIER.get(name) or _SQL_NAMES.get(name, name)
        return sql + _ZONE.get(name, "")
    if name not in _SQL_NAMES:
        # a type without a typmodout of its own: format_type prints the number
        return f"{_NO_MODIFIER.get(name, name)}({type_modifier})"
    modifier = _modifier_text(name, type_modifier)
    return None if modifier is None else _SQL_NAMES[name] + modifier + _ZONE.get(name, "")


def _modifier_text(name: str, mod: int) -> str | None:
    """The typmodout of a type format_type knows by name ("(10,2)", "(3)", " day"...)."""
    if name in ("bpchar", "varchar"):
        return f"({mod - VARHDRSZ})" if mod > VARHDRSZ else ""
    if name in ("bit", "varbit") or name in _ZONE:
        return f"({mod})"
    if name == "numeric":
        precision = ((mod - VARHDRSZ) >> 16) & 0xFFFF
        scale = (((mod - VARHDRSZ) & 0x7FF) ^ 1024) - 1024  # 11 bits, signed (PostgreSQL 15)
        return f"({precision},{scale})"
    if name == "interval":
        fields = _INTERVAL_FIELDS.get((mod >> 16) & 0x7FFF)
        precision = mod & 0xFFFF
        if fields is None:
            return None  # the server refuses it too ("invalid INTERVAL typmod")
        return fields if precision == 0xFFFF else f"{fields}({precision})"
    return ""  # bool, integers, floats: no modifier shown


def spell(type_name: ast.TypeName, modifiers: bool = True) -> str:
    """The format_type spelling of a type as DDL writes it (``int``, ``serial`` and
    ``int4`` -> ``integer``; ``numeric(10, 2)`` -> ``numeric(10,2)``; ``text[]``). A type
    that is not built in is kept as written (the parser lower-cases unquoted names), with
    its modifiers (``geometry(point,4326)``). Without ``modifiers``: as if none were given
    (a cast's spelling: ``character varying``, ``bpchar``)."""
    names = [n.sval for n in type_name.names or ()]
    array = "[]" if type_name.arrayBounds else ""
    builtin = len(names) == 1 or (len(names) == 2 and names[0] == "pg_catalog")
    oid = _BY_NAME.get(_SERIALS.get(names[-1], names[-1])) if builtin else None
    if oid is None:
        written = _written_modifiers(type_name) if modifiers else ""
        return ".".join(_quoted(n) for n in names) + written + array
    if oid in _ELEMENT_OF:  # _int4
        oid, array = _ELEMENT_OF[oid], "[]"
    spelled = format_type(oid, typmod(oid, _integers(type_name)) if modifiers else -1)
    return (spelled or names[-1]) + array


def typmod(type_oid: int, args: list[int]) -> int:
    """The modifier PostgreSQL's typmodin functions make of a type's arguments
    (``varchar(40)`` -> 44); -1 when there are none, or they are not numbers."""
    name = _TYPES[type_oid][0] if type_oid in _TYPES else ""
    if not args:
        return -1
    if name in ("bpchar", "varchar"):
        return args[0] + VARHDRSZ
    if name == "numeric":
        scale = args[1] if len(args) > 1 else 0
        return ((args[0] << 16) | (scale & 0x7FF)) + VARHDRSZ
    if name in _ZONE:
        return min(args[0], _MAX_SECONDS_PRECISION)  # the server lowers it, with a warning
    if name == "interval":
        fields = args[0] & 0x7FFF
        if len(args) == 1:
            return -1 if fields == 0x7FFF else (fields << 16) | 0xFFFF
        return (fields << 16) | min(args[1], _MAX_SECONDS_PRECISION)
    if name in ("bit", "varbit"):
        return args[0]
    return -1


def _integers(type_name: ast.TypeName) -> list[int]:
    values: list[int] = []
    for arg in type_name.typmods or ():
        value = getattr(arg, "val", None)
        if not isinstance(value, ast.Integer) or value.ival is None:
            return []
        values.append(value.ival)
    return values


def _written_modifiers(type_name: ast.TypeName) -> str:
    if not type_name.typmods:
        return ""
    return "(" + ",".join(RawStream()(arg) for arg in type_name.typmods) + ")"


def _quoted(name: str) -> str:
    """An identifier as format_type prints it: quoted unless plain lower case."""
    if re.fullmatch(r"[a-z_][a-z0-9_$]*", name):
        return name
    return '"' + name.replace('"', '""') + '"'
