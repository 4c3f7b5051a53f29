# -*- test-case-name: tests.unit.test_abuse -*-
"""
Giving the C heap's free memory back to the system after a burst.

CPython allocates objects larger than 512 bytes with the C library's
C{malloc}.  glibc serves requests below its mmap threshold (128 KiB at
first) from its heaps, and returns memory to the kernel only from the top of
a heap: chunks freed below one still in use stay in the process, counted
in its resident memory, for later allocations.  A burst of half-sent 64 KiB
frames leaves the server's heaps full of such holes once it ends, and its
RSS where the burst took it (docs/reliability.rst measures both).
C{malloc_trim(0)} returns the free pages inside the heaps too (glibc 2.8
and later walk every free chunk).

Other C libraries have no C{malloc_trim} (musl, macOS); L{trim} then does
nothing.  No reactor, no Twisted.
"""

import ctypes
import sys


def _find_malloc_trim():
    """
    glibc's C{malloc_trim}, if this process has it; else L{None}.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        # The symbols the process already has: its own C library.
        libc = ctypes.CDLL(None)
        malloc_trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    malloc_trim.argtypes = [ctypes.c_size_t]
    malloc_trim.restype = ctypes.c_int
    return malloc_trim


_malloc_trim = _find_malloc_trim()


def can_trim():
    """
    Whether L{trim} can give memory back here.
    """
    return _malloc_trim is not None


def trim():
    """
    Give the free pages of the C heaps back to the system.

    @return: whether any memory was given back.
    """
    if _malloc_trim is None:
        return False
    return bool(_malloc_trim(0))
