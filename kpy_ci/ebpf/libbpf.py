"""A thin ctypes binding to libbpf (``libbpf.so.1``): open, load, attach, maps, close.

Only what kpy uses. libbpf 1.x returns NULL and sets errno on failure; every function that
returns a pointer gets ``restype = c_void_p`` so pointers are not truncated to int.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from kpy_ci.errors import EnvironmentProblem

if TYPE_CHECKING:
    from _ctypes import _CData as CData  # the base of every ctypes value, in typeshed

K = TypeVar("K", bound="CData")
V = TypeVar("V", bound="CData")
_LIB_NAMES = ("libbpf.so.1", "libbpf.so")
_PRINT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)


class _Lib:
    """libbpf's functions, typed once."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        ptr, cint, cstr = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p
        self._lib = lib

        def fn(name: str, restype: object, *argtypes: object) -> Any:
            f = getattr(lib, name)
            f.restype = restype
            f.argtypes = list(argtypes)
            return f

        self.open_file = fn("bpf_object__open_file", ptr, cstr, ptr)
        self.load = fn("bpf_object__load", cint, ptr)
        self.close = fn("bpf_object__close", None, ptr)
        self.find_program = fn("bpf_object__find_program_by_name", ptr, ptr, cstr)
        self.find_map = fn("bpf_object__find_map_by_name", ptr, ptr, cstr)
        self.next_program = fn("bpf_object__next_program", ptr, ptr, ptr)
        self.program_name = fn("bpf_program__name", cstr, ptr)
        self.attach_cgroup = fn("bpf_program__attach_cgroup", ptr, ptr, cint)
        self.link_destroy = fn("bpf_link__destroy", cint, ptr)
        self.map_fd = fn("bpf_map__fd", cint, ptr)
        self.update_elem = fn("bpf_map_update_elem", cint, cint, ptr, ptr, ctypes.c_uint64)
        self.lookup_elem = fn("bpf_map_lookup_elem", cint, cint, ptr, ptr)
        self.delete_elem = fn("bpf_map_delete_elem", cint, cint, ptr)
        self.next_key = fn("bpf_map_get_next_key", cint, cint, ptr, ptr)
        self.set_print = fn("libbpf_set_print", ptr, _PRINT_FN)
        self.version = fn("libbpf_version_string", cstr)


_lib: _Lib | None = None
_lib_lock = threading.Lock()
_log: list[str] = []
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]


def _print_to_log(level: int, fmt: bytes, args: int) -> int:
    # va_list is passed by reference on x86-64 and arm64, so vsnprintf can format it here.
    buf = ctypes.create_string_buffer(4096)
    _libc.vsnprintf(buf, len(buf), fmt, args)
    _log.append(buf.value.decode(errors="replace"))
    del _log[:-200]
    return 0


_print = _PRINT_FN(_print_to_log)  # kept referenced: libbpf calls it for as long as we live


def lib() -> _Lib:
    """libbpf, loaded once; EnvironmentProblem if it is not installed."""
    global _lib
    with _lib_lock:
        if _lib is None:
            for name in _LIB_NAMES:
                try:
                    raw = ctypes.CDLL(name, use_errno=True)
                except OSError:
                    continue
                _lib = _Lib(raw)
                _lib.set_print(_print)
                break
            else:
                raise EnvironmentProblem(
                    "libbpf not found (libbpf.so.1): install it with "
                    "'apt-get install libbpf1' (Debian/Ubuntu)"
                )
        return _lib


def version() -> str:
    return str(lib().version().decode())


def _failure(what: str, err: int) -> str:
    detail = [line.strip() for line in _log[-12:] if line.strip()]
    tail = ("; " + " | ".join(detail)) if detail else ""
    return f"{what}: {os.strerror(err)} (errno {errno.errorcode.get(err, err)}){tail}"


class BpfError(EnvironmentProblem):
    """libbpf refused: the message carries errno and libbpf's own last lines."""


class Map:
    """A loaded map, by fd: fixed-size keys and values as ctypes structures or bytes."""

    def __init__(self, name: str, fd: int) -> None:
        self.name = name
        self.fd = fd

    def update(self, key: CData, value: CData) -> None:
        if lib().update_elem(self.fd, ctypes.byref(key), ctypes.byref(value), 0) != 0:
            raise BpfError(_failure(f"updating map {self.name}", ctypes.get_errno()))

    def lookup(self, key: CData, value: CData) -> bool:
        """Fill ``value`` from ``key``; False if absent."""
        if lib().lookup_elem(self.fd, ctypes.byref(key), ctypes.byref(value)) == 0:
            return True
        err = ctypes.get_errno()
        if err == errno.ENOENT:
            return False
        raise BpfError(_failure(f"reading map {self.name}", err))

    def delete(self, key: CData) -> None:
        lib().delete_elem(self.fd, ctypes.byref(key))

    def items(self, key_type: type[K], value_type: type[V]) -> list[tuple[K, V]]:
        """Every entry, read one by one (not atomically: the kernel may change the map
        meanwhile; an entry deleted between two reads is left out)."""
        out: list[tuple[K, V]] = []
        key = key_type()
        previous = None  # NULL: the first key
        while True:
            if lib().next_key(self.fd, previous, ctypes.byref(key)) != 0:
                err = ctypes.get_errno()
                if err == errno.ENOENT:
                    return out
                raise BpfError(_failure(f"listing map {self.name}", err))
            value = value_type()
            if self.lookup(key, value):
                out.append((key, value))
            previous = ctypes.byref(key)
            key = key_type()


class BpfObject:
    """An opened and loaded BPF object file; ``close()`` frees programs and maps."""

    def __init__(self, path: str) -> None:
        self._lib = lib()
        _log.clear()
        handle = self._lib.open_file(path.encode(), None)
        if not handle:
            raise BpfError(_failure(f"opening {path}", ctypes.get_errno()))
        self._handle: int | None = handle
        self._links: list[int] = []
        if self._lib.load(handle) != 0:
            err = ctypes.get_errno()
            self.close()
            raise BpfError(_failure(f"loading {path} into the kernel", err))

    def program_names(self) -> list[str]:
        names: list[str] = []
        prog = None
        while True:
            prog = self._lib.next_program(self._handle, prog)
            if not prog:
                return names
            names.append(self._lib.program_name(prog).decode())

    def map(self, name: str) -> Map:
        m = self._lib.find_map(self._handle, name.encode())
        if not m:
            raise BpfError(f"map {name} is not in the BPF object")
        return Map(name, self._lib.map_fd(m))

    def attach_cgroup(self, program: str, cgroup_fd: int) -> None:
        """Attach by a bpf_link owned by this process: the kernel detaches it if we die."""
        prog = self._lib.find_program(self._handle, program.encode())
        if not prog:
            raise BpfError(f"program {program} is not in the BPF object")
        link = self._lib.attach_cgroup(prog, cgroup_fd)
        if not link:
            raise BpfError(_failure(f"attaching {program} to the cgroup", ctypes.get_errno()))
        self._links.append(link)

    def detach_all(self) -> None:
        while self._links:
            self._lib.link_destroy(self._links.pop())

    def close(self) -> None:
        self.detach_all()
        if self._handle:
            self._lib.close(self._handle)
            self._handle = None


@contextmanager
def loaded(path: str) -> Iterator[BpfObject]:
    obj = BpfObject(path)
    try:
        yield obj
    finally:
        obj.close()
