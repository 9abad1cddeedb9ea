"""An SSH connection to a device (paramiko): host keys checked against known_hosts, never trusted
silently; keys from the user's agent, ~/.ssh, or `--identity`; files over SFTP."""

from __future__ import annotations

import re
import shlex
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Optional, Tuple

from edgecv.errors import EdgecvError
from edgecv.extras import require_extra

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
            raise EdgecvError(f"--host {text!r}: give user@host or user@host:port (e.g. pi@192.168.1.20:22)")
        port = int(m["port"] or 22)
        if not 0 < port < 65536:
            raise EdgecvError(f"--host {text!r}: port {port} is out of range")
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
            raise EdgecvError(f"--known-hosts {known_hosts}: no such file")
        client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    if identity is not None and not Path(identity).is_file():
        raise EdgecvError(f"--identity {identity}: no such key file")
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


def run(client, command: str, timeout: float = 600.0) -> Tuple[int, str, str]:
    """(exit status, stdout, stderr) of a shell command on the device."""
    _, stdout, stderr = client.exec_command(command, timeout=timeout)
    out, err = stdout.read().decode(errors="replace"), stderr.read().decode(errors="replace")
    return stdout.channel.recv_exit_status(), out, err


def put(sftp, local: Path, remote: PurePosixPath) -> int:
    """Copy a file or a folder tree to the device; returns the bytes sent."""
    local = Path(local)
    if local.is_file():
        sftp.put(str(local), str(remote))
        return local.stat().st_size
    sftp.mkdir(str(remote))
    return sum(put(sftp, child, remote / child.name) for child in sorted(local.iterdir()))


def is_dir(sftp, remote: PurePosixPath) -> bool:
    return stat.S_ISDIR(sftp.stat(str(remote)).st_mode)


def quote(path) -> str:
    return shlex.quote(str(path))
