"""The first program of a sandboxed interpreter run: lock this process down, then exec Python on the code.

Runs as ``python -I -S sandbox_boot.py CONFIG_JSON`` (standard library only, no site, no glmkit import).
In order, each step failing closed (exit 97 with the reason on stderr):

1. resource limits: CPU seconds, address space, file size, open files, no core dumps;
2. ``PR_SET_NO_NEW_PRIVS``;
3. a new user + network namespace when the kernel allows it (no interfaces but loopback, which is down);
4. Landlock: read/execute only under the Python runtime and system library folders, read/write only in
   the scratch folder; every other path is denied (needs Landlock ABI >= 1);
5. seccomp: ``socket`` and ``io_uring_setup`` fail with EPERM, so no socket of any family can be opened;
6. ``execve`` of ``python -I -S -B main.py`` in the scratch folder with a clean environment.

Everything applied here is inherited across ``execve`` and by any child the code starts."""

from __future__ import annotations

import ctypes
import json
import os
import platform
import resource
import struct
import sys

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000

ARCH = {  # machine: (AUDIT_ARCH, landlock_create_ruleset, add_rule, restrict_self, socket, io_uring_setup)
    "x86_64": (0xC000003E, 444, 445, 446, 41, 425),
    "aarch64": (0xC00000B7, 444, 445, 446, 198, 425),
}

# Landlock filesystem rights (ABI 1..5)
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_ALL_V1 = (1 << 13) - 1
FS_REFER, FS_TRUNCATE, FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
READ_ONLY = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
LANDLOCK_RULE_PATH_BENEATH = 1
LANDLOCK_CREATE_RULESET_VERSION = 1


def die(msg: str) -> None:
    sys.stderr.write(f"sandbox: {msg}\n")
    sys.stderr.flush()
    os._exit(97)


def limits(cfg: dict[str, int]) -> None:
    cpu = int(cfg["cpu_seconds"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    mem = int(cfg["memory_bytes"])
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    size = int(cfg["file_bytes"])
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def no_network(libc: ctypes.CDLL) -> bool:
    """A fresh network namespace (inside a user namespace, so no privilege is needed)."""
    return bool(libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0)


def landlock(libc: ctypes.CDLL, arch: tuple[int, ...], read_only: list[str], read_write: list[str]) -> int:
    create, add_rule, restrict = arch[1], arch[2], arch[3]
    abi = libc.syscall(create, None, ctypes.c_size_t(0), ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION))
    if abi < 1:
        die("Landlock is not available on this kernel: refusing to run without filesystem isolation")
    handled = FS_ALL_V1
    if abi >= 2:
        handled |= FS_REFER
    if abi >= 3:
        handled |= FS_TRUNCATE
    if abi >= 5:
        handled |= FS_IOCTL_DEV
    attr = struct.pack("=Q", handled)  # struct landlock_ruleset_attr, fs part only (accepted by every ABI)
    buf = ctypes.create_string_buffer(attr, len(attr))
    ruleset = libc.syscall(create, buf, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))
    if ruleset < 0:
        die(f"landlock_create_ruleset failed (errno {ctypes.get_errno()})")
    file_rights = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | (FS_TRUNCATE if abi >= 3 else 0)
    for paths, access in ((read_only, READ_ONLY), (read_write, handled)):
        for p in paths:
            try:
                fd = os.open(p, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue  # a folder this system does not have
            allowed = access if os.path.isdir(p) else access & file_rights
            rule = struct.pack("=Qi", allowed, fd)  # struct landlock_path_beneath_attr (packed)
            rbuf = ctypes.create_string_buffer(rule, len(rule))
            if libc.syscall(add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, rbuf, ctypes.c_uint32(0)) != 0:
                die(f"landlock_add_rule({p}) failed (errno {ctypes.get_errno()})")
            os.close(fd)
    if libc.syscall(restrict, ruleset, ctypes.c_uint32(0)) != 0:
        die(f"landlock_restrict_self failed (errno {ctypes.get_errno()})")
    os.close(ruleset)
    return int(abi)


def seccomp(libc: ctypes.CDLL, arch: tuple[int, ...]) -> None:
    """A BPF filter: wrong architecture → kill; socket / io_uring_setup → EPERM; anything else → allow."""
    audit_arch, nr_socket, nr_uring = arch[0], arch[4], arch[5]
    ld, jeq, ret = 0x20, 0x15, 0x06  # BPF_LD|BPF_W|BPF_ABS, BPF_JMP|BPF_JEQ|BPF_K, BPF_RET|BPF_K
    kill, allow, eperm = 0x80000000, 0x7FFF0000, 0x00050000 | 1
    prog = [
        (ld, 0, 0, 4),  # seccomp_data.arch
        (jeq, 1, 0, audit_arch),
        (ret, 0, 0, kill),
        (ld, 0, 0, 0),  # seccomp_data.nr
        (jeq, 0, 1, nr_socket),
        (ret, 0, 0, eperm),
        (jeq, 0, 1, nr_uring),
        (ret, 0, 0, eperm),
        (ret, 0, 0, allow),
    ]
    raw = b"".join(struct.pack("=HBBI", *ins) for ins in prog)
    filt = ctypes.create_string_buffer(raw, len(raw))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(prog), ctypes.cast(filt, ctypes.c_void_p))
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        die(f"seccomp filter refused (errno {ctypes.get_errno()})")


def main() -> None:
    cfg = json.loads(sys.argv[1])
    if platform.machine() not in ARCH:
        die(f"no sandbox for {platform.machine()}: refusing to run")
    arch = ARCH[platform.machine()]
    libc = ctypes.CDLL(None, use_errno=True)
    scratch = cfg["scratch"]
    os.chdir(scratch)
    limits(cfg)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        die("PR_SET_NO_NEW_PRIVS failed")
    netns = no_network(libc)
    landlock(libc, arch, cfg["read_only"], [scratch])
    seccomp(libc, arch)
    env = {"PATH": "/usr/bin:/bin", "HOME": scratch, "LANG": "C.UTF-8", "PYTHONIOENCODING": "utf-8",
           "GLMKIT_SANDBOX_NETNS": "1" if netns else "0"}  # fmt: skip
    os.execve(cfg["python"], [cfg["python"], "-I", "-S", "-B", "main.py"], env)


if __name__ == "__main__":
    main()
