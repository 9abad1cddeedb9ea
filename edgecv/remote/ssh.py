"""An SSH connection to a device (paramiko): host keys checked against known_hosts, never trusted
silently; keys from the user's agent, ~/.ssh, or `--identity`; files over SFTP."""

from __future__ import annotations

import os
import re
import shlex
import socket
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import List, Optional, Tuple

from edgecv.errors import EdgecvError, InputError
from edgecv.extras import require_extra
from edgecv.data.images import IMAGE_EXTENSIONS
from edgecv.files import unusable_name

HOST_PATTERN = re.compile(r"^(?P<user>[^@\s]+)@(?P<host>[^:@\s]+|\[[0-9a-fA-F:]+\])(?::(?P<port>\d{1,5}))?$")


class RemoteError(EdgecvError):
    """The device cannot be reached, refused us, or failed the command: the message says what to do."""

    exit_code = 5


@dataclass(frozen=True)
class HostSpec:
    user: str
    host: str
    port: int = 22

    @classmethod
    def parse(cls, text: str) -> "HostSpec":
        m = HOST_PATTERN.match(text.strip())
        if not m:
            raise InputError(f"--host {text!r}: give user@host or user@host:port (e.g. pi@192.168.1.20:22)")
        port = int(m["port"] or 22)
        if not 0 < port < 65536:
            raise InputError(f"--host {text!r}: port {port} is out of range")
        return cls(m["user"], m["host"].strip("[]"), port)

    def __str__(self) -> str:
        return f"{self.user}@{self.host}" + ("" if self.port == 22 else f":{self.port}")

    @property
    def keyscan(self) -> str:
        return f"ssh-keyscan -p {self.port} {self.host}"


def connect(spec: HostSpec, identity: Optional[Path] = None, known_hosts: Optional[Path] = None,
            timeout: float = 15.0):
    """A paramiko SSHClient logged in to `spec`. An unknown or changed host key is refused."""
    require_extra("remote", "benchmarking on a device over SSH")
    import paramiko

    client = paramiko.SSHClient()
    client.load_system_host_keys()
    if known_hosts is not None:
        if not Path(known_hosts).is_file():
            raise InputError(f"--known-hosts {known_hosts}: no such file")
        try:
            client.load_host_keys(str(known_hosts))
        except (OSError, UnicodeDecodeError, ValueError, paramiko.SSHException) as e:
            raise InputError(f"--known-hosts {known_hosts}: not a known_hosts file ({type(e).__name__}: {e}); "
                             f"make one with {spec.keyscan} > FILE after checking the fingerprint") from None
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    if identity is not None:
        check_identity(Path(identity))
    where = known_hosts or "~/.ssh/known_hosts"
    try:
        client.connect(spec.host, port=spec.port, username=spec.user, key_filename=str(identity) if identity else None,
                       allow_agent=True, look_for_keys=identity is None, timeout=timeout, banner_timeout=timeout,
                       auth_timeout=timeout)
    except paramiko.BadHostKeyException as e:
        raise RemoteError(f"{spec.host}:{spec.port} presented a host key that does not match {where} (got "
                          f"{e.key.get_name()} {e.key.fingerprint}): the device was reinstalled or someone is in "
                          "between; check the key on the device, then fix the line in known_hosts") from None
    except paramiko.AuthenticationException:
        raise RemoteError(f"{spec}: authentication failed: load your key into ssh-agent (ssh-add) or pass "
                          f"--identity KEYFILE; the device must list its public key in ~{spec.user}/.ssh/authorized_keys") from None
    except paramiko.SSHException as e:
        if "not found in known_hosts" in str(e):
            raise RemoteError(f"{spec.host}:{spec.port} is not in {where}, and edgecv does not trust unknown hosts: "
                              f"check its fingerprint on the device, then add it: {spec.keyscan} >> {where}") from None
        raise RemoteError(f"{spec}: SSH failed: {e}") from None
    except OSError as e:  # refused, unreachable, timed out
        raise RemoteError(f"{spec}: cannot connect: {e}") from None
    return client


def check_identity(identity: Path) -> None:
    """--identity must be a private key file paramiko can read (a passphrase-protected one is left
    to ssh-agent): a wrong file is bad input, not a device failure."""
    import paramiko

    if not identity.is_file():
        raise InputError(f"--identity {identity}: no such key file")
    try:
        paramiko.PKey.from_path(str(identity))
    except paramiko.PasswordRequiredException:
        return
    except (paramiko.SSHException, ValueError, TypeError, OSError, UnicodeDecodeError) as e:
        raise InputError(f"--identity {identity}: not a private key file edgecv can use ({type(e).__name__}: {e}); "
                         "give an OpenSSH private key (ssh-keygen -t ed25519), or leave --identity out to use ssh-agent") from None


def remote_command(python: str, *args: str) -> str:
    """`python args...` as one shell command line for the device, every word quoted: --remote-python
    may be several words (`env PYTHONPATH=/opt/x python3`), never shell syntax."""
    words = shlex.split(python) if python else []
    if not words:
        raise InputError("--remote-python: give the device's Python command, e.g. python3")
    return " ".join(shlex.quote(w) for w in [*words, *args])


def run(client, command: str, timeout: float = 600.0) -> Tuple[int, str, str]:
    """(exit status, stdout, stderr) of a shell command on the device; RemoteError when the device
    does not finish it within `timeout` seconds (a hung device)."""
    try:
        _, stdout, stderr = client.exec_command(command, timeout=timeout)
        out, err = stdout.read().decode(errors="replace"), stderr.read().decode(errors="replace")
        return stdout.channel.recv_exit_status(), out, err
    except (socket.timeout, TimeoutError):
        raise RemoteError(f"the device did not finish `{command[:120]}` within {timeout:g} s: it hangs or is far "
                          "too slow; check it (ssh in, look at its load), or give it longer with --remote-timeout") from None
    except (OSError, EOFError) as e:
        raise RemoteError(f"the connection to the device broke while running a command: {e}") from None


@dataclass
class Upload:
    """What `put` sent, and what it left out with the reason (listed to the user)."""

    bytes: int = 0
    files: int = 0
    skipped: List[Tuple[str, str]] = field(default_factory=list)


def _inside(path: Path, root: Path) -> bool:
    try:
        Path(os.path.realpath(path)).relative_to(root)
        return True
    except ValueError:
        return False


def put(sftp, local: Path, remote: PurePosixPath, images_only: bool = False, upload: Optional[Upload] = None) -> Upload:
    """Copy a file or a folder tree to the device. Nothing outside `local` is sent: a link leaving it
    (to /etc/ssh, say), a link to a folder (loops), a broken link, a hidden entry (.ssh, .env) is
    skipped and listed in `Upload.skipped`. `images_only`: only files the data index accepts as
    images (by extension and a usable name), for `--data`."""
    local = Path(local)
    up = upload if upload is not None else Upload()
    if local.is_symlink() and not local.exists():
        up.skipped.append((str(local), f"broken symbolic link (to {os.readlink(local)})"))
        return up
    root = Path(os.path.realpath(local))
    if not local.is_dir():
        sftp.put(str(root), str(remote))
        up.bytes, up.files = up.bytes + root.stat().st_size, up.files + 1
        return up
    sftp.mkdir(str(remote))
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        rel = here.relative_to(root)
        for d in sorted(dirnames):
            p = here / d
            if d.startswith("."):
                up.skipped.append((str(p), "hidden folder"))
            elif p.is_symlink():
                up.skipped.append((str(p), f"symbolic link to a folder ({os.readlink(p)}): not followed"))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and not (here / d).is_symlink())
        for d in dirnames:
            sftp.mkdir(str(remote / PurePosixPath(*rel.parts, d)))
        for name in sorted(filenames):
            p = here / name
            why = ("hidden file" if name.startswith(".") else unusable_name(p)
                   or (None if _inside(p, root) else f"symbolic link leaving {local} (to {os.readlink(p)})")
                   or (None if not images_only or p.suffix.lower() in IMAGE_EXTENSIONS else "not an image file"))
            if why is None and not Path(os.path.realpath(p)).is_file():
                why = "not a regular file"
            if why:
                up.skipped.append((str(p), why))
                continue
            sftp.put(os.path.realpath(p), str(remote / PurePosixPath(*rel.parts, name)))
            up.bytes, up.files = up.bytes + os.stat(p).st_size, up.files + 1
    return up


def is_dir(sftp, remote: PurePosixPath) -> bool:
    return stat.S_ISDIR(sftp.stat(str(remote)).st_mode)


def quote(path) -> str:
    return shlex.quote(str(path))
