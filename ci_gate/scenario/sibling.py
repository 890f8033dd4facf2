"""Trace the scenario where io_uring works: here, or in a sibling container that allows it.

Docker 25+ (GitHub's runners) applies a seccomp profile to container actions that makes
io_uring_setup fail with EPERM, and a container action cannot change its own profile. The
runner does mount the Docker socket into the action's container, so the traced step (strace
running the scenario command; nothing else) can be run in a *sibling* container:

* the same image (by id), so strace, the C library and the gate are identical;
* the action container's volumes (``VolumesFrom``): workspace, home, out dir and fixture
  appear at the same paths; its network namespace, ulimits and capabilities;
* Docker's default seccomp profile plus io_uring_setup/io_uring_enter/io_uring_register
  (:mod:`ci_gate.scenario.seccomp_profile`), so nothing else is loosened.

:func:`plan` decides (probing io_uring_setup first), :meth:`Plan.trace` traces. The sibling
runs ``python -m ci_gate.scenario.sibling SPEC``, which calls :func:`tracer.trace` exactly
as the gate would here and writes the outcome as JSON into the shared out dir. Build, fixture,
verification and analysis stay in the action container.

When io_uring is blocked and no sibling can be had (no socket, not in a container, the
kernel disables io_uring for everyone), the trace runs here; a target that tries io_uring then
shows io_uring_setup failing, and the collector makes the run ERROR (io_uring-blocked, exit 3),
not FAIL. The reason the relaunch was not made is kept in results.json
(``environment.trace_placement``).

The Docker Engine API (v1.41, which podman's compatible service also speaks) is used with
plain HTTP over the unix socket. ``SYSCALL_GATE_SIBLING=never`` turns the relaunch off;
``DOCKER_HOST=unix:///path`` points at another socket.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import os
import re
import socket
import stat
import struct
import sys
import typing
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci_gate.errors import MeasureError
from ci_gate.scenario import environment, seccomp_profile, tracer

API_VERSION = "v1.41"
DEFAULT_SOCKET = "/var/run/docker.sock"
LABEL = "io.github.syscall-gate.sibling-of"
SPEC_NAME = ".syscall-gate-sibling.json"
RESULT_NAME = ".syscall-gate-sibling-result.json"
PROFILE_NAME = ".syscall-gate-seccomp.json"
# Container start-up, the interpreter and the kill of a timed-out target, on top of the
# scenario's own timeout (which the child enforces).
WAIT_GRACE = 120.0
BLOCKED = frozenset({"EPERM", "ENOSYS", "EACCES"})
# The files every engine bind-mounts from the container's own directory; their source
# path names the container id (docker: /var/lib/docker/containers/ID/hostname, podman:
# .../overlay-containers/ID/userdata/hostname).
_ID_MOUNTS = frozenset({"/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/run/.containerenv"})
_ID_IN_PATH = re.compile(r"/([0-9a-f]{64})(?:/|$)")

Log = Callable[[str], None]


@dataclass
class Traced:
    """A trace and where it was made."""

    run: tracer.TraceRun
    placement: dict[str, Any]
    problems: list[dict[str, Any]] = field(default_factory=list)


class EngineError(Exception):
    """The container engine refused or could not be reached."""


class _Unavailable(Exception):
    """No sibling can be made; the reason says why (the trace runs here)."""


# -- the Docker Engine API over a unix socket ------------------------------------------------


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class Engine:
    """The few Docker Engine API calls the relaunch needs."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: dict[str, str] | None = None,
        timeout: float = 60.0,
        expect: Sequence[int] = (200, 201, 204),
    ) -> bytes:
        url = f"/{API_VERSION}{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        headers = {"Host": "docker"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn = _UnixConnection(self.socket_path, timeout)
        try:
            conn.request(method, url, body=payload, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise EngineError(f"{method} {path}: {exc}") from exc
        finally:
            conn.close()
        if resp.status not in expect:
            raise EngineError(f"{method} {path}: HTTP {resp.status}: {_message(data)}")
        return data

    def json(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        data = self.call(method, path, body, **kw)
        try:
            return json.loads(data) if data.strip() else None
        except ValueError as exc:
            raise EngineError(f"{method} {path}: not JSON: {data[:200]!r}") from exc

    def version(self) -> dict[str, Any]:
        out = self.json("GET", "/version", timeout=10.0)
        return out if isinstance(out, dict) else {}

    def inspect(self, ident: str) -> dict[str, Any]:
        out = self.json("GET", f"/containers/{urllib.parse.quote(ident, safe='')}/json")
        if not isinstance(out, dict) or "Id" not in out:
            raise EngineError(f"inspect {ident}: unexpected answer")
        return out

    def create(self, config: dict[str, Any]) -> str:
        out = self.json("POST", "/containers/create", config)
        if not isinstance(out, dict) or not out.get("Id"):
            raise EngineError("create: no container id in the answer")
        return str(out["Id"])

    def start(self, cid: str) -> None:
        self.call("POST", f"/containers/{cid}/start", expect=(204, 304))

    def wait(self, cid: str, timeout: float) -> int:
        out = self.json("POST", f"/containers/{cid}/wait", timeout=timeout)
        if not isinstance(out, dict):
            raise EngineError("wait: unexpected answer")
        return int(out.get("StatusCode", -1))

    def logs(self, cid: str) -> str:
        data = self.call("GET", f"/containers/{cid}/logs", query={"stdout": "1", "stderr": "1"})
        return demux(data).decode("utf-8", "replace")

    def remove(self, cid: str) -> None:
        self.call(
            "DELETE", f"/containers/{cid}", query={"force": "1", "v": "0"}, expect=(200, 204, 404)
        )


def demux(data: bytes) -> bytes:
    """Docker's multiplexed log stream (8-byte frame headers) as plain bytes."""
    out = bytearray()
    pos = 0
    while pos + 8 <= len(data) and data[pos] in (0, 1, 2) and data[pos + 1 : pos + 4] == b"\0\0\0":
        (size,) = struct.unpack(">I", data[pos + 4 : pos + 8])
        out += data[pos + 8 : pos + 8 + size]
        pos += 8 + size
    return bytes(out + data[pos:])


def _message(data: bytes) -> str:
    try:
        return str(json.loads(data).get("message", "")) or data[:300].decode("utf-8", "replace")
    except (ValueError, AttributeError):
        return data[:300].decode("utf-8", "replace")


# -- where am I ------------------------------------------------------------------------------


def socket_path(env: dict[str, str] | None = None) -> str | None:
    """The engine's unix socket from DOCKER_HOST or the default path, if it exists."""
    env = dict(os.environ) if env is None else env
    host = env.get("DOCKER_HOST", "")
    if host and not host.startswith("unix://"):
        return None
    path = host[len("unix://") :] if host else DEFAULT_SOCKET
    try:
        return path if stat.S_ISSOCK(os.stat(path).st_mode) else None
    except OSError:
        return None


def own_container_ids(mountinfo: str | None = None) -> list[str]:
    """Candidates for this container's id: from the engine's bind mounts, then the hostname."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            mountinfo = ""
    found: list[str] = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) < 5 or fields[4] not in _ID_MOUNTS:
            continue
        m = _ID_IN_PATH.search(fields[3])
        if m and m.group(1) not in found:
            found.append(m.group(1))
    host = socket.gethostname()
    if host and host not in found:
        found.append(host)
    return found


def _covering_mount(path: Path, mounts: list[dict[str, Any]]) -> dict[str, Any] | None:
    best: dict[str, Any] | None = None
    for m in mounts:
        dest = str(m.get("Destination") or "")
        if not dest or dest == "/":
            continue
        if (path == Path(dest) or Path(dest) in path.parents) and (
            best is None or len(dest) > len(str(best["Destination"]))
        ):
            best = m
    return best


def _ulimits(raw: Any) -> list[dict[str, Any]]:
    out = []
    for u in raw or []:
        name = str(u.get("Name", "")).lower()
        name = name[len("rlimit_") :] if name.startswith("rlimit_") else name
        out.append({"Name": name, "Soft": u.get("Soft"), "Hard": u.get("Hard")})
    return out


def _engine_name(version: dict[str, Any]) -> str:
    for comp in version.get("Components") or []:
        name = str(comp.get("Name", ""))
        if name in ("Engine", "Podman Engine"):
            return f"{'Podman' if 'Podman' in name else 'Docker'} {comp.get('Version', '')}".strip()
    return f"engine {version.get('Version', 'unknown')}"


# -- the relaunch ----------------------------------------------------------------------------


class Sibling:
    """One sibling container for one traced step."""

    def __init__(self, engine: Engine, me: dict[str, Any], version: dict[str, Any]) -> None:
        self.engine = engine
        self.me = me
        self.version = version
        self.podman = "Podman" in _engine_name(version)

    @classmethod
    def find(cls, log: Log) -> Sibling:
        if os.environ.get("SYSCALL_GATE_SIBLING", "auto") == "never":
            raise _Unavailable("turned off (SYSCALL_GATE_SIBLING=never)")
        if environment.container() is None:
            raise _Unavailable("not running in a container")
        if environment.io_uring_disabled() == "2":
            raise _Unavailable(
                "kernel.io_uring_disabled=2 disables io_uring for every process "
                "on this machine; no container can use it"
            )
        path = socket_path()
        if path is None:
            where = os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET
            raise _Unavailable(f"no container engine socket at {where}")
        engine = Engine(path)
        try:
            version = engine.version()
        except EngineError as exc:
            raise _Unavailable(f"the engine at {path} does not answer: {exc}") from exc
        errors = []
        for ident in own_container_ids():
            try:
                me = engine.inspect(ident)
            except EngineError as exc:
                errors.append(str(exc))
                continue
            log(f"relaunch: this is container {me['Id'][:12]} of {_engine_name(version)}")
            return cls(engine, me, version)
        raise _Unavailable("the engine does not know this container (" + "; ".join(errors) + ")")

    def shared(self, path: Path) -> dict[str, Any]:
        mount = _covering_mount(path, list(self.me.get("Mounts") or []))
        if mount is None:
            raise _Unavailable(
                f"{path} is not on a volume a sibling container shares; put the "
                "out dir and the fixture (--scratch) on a mounted volume such as "
                "the workspace"
            )
        return mount

    def seccomp_option(self, out_dir: Path) -> str:
        profile = seccomp_profile.with_io_uring()
        if not self.podman:
            # Docker's API takes the profile itself (the CLI reads the file client-side).
            return "seccomp=" + json.dumps(profile, separators=(",", ":"))
        # Podman's compatible API takes a path on the engine's host: write the profile to a
        # shared volume and name it by the volume's source.
        mount = self.shared(out_dir)
        target = out_dir / PROFILE_NAME
        target.write_text(json.dumps(profile))
        rel = target.relative_to(Path(mount["Destination"]))
        return "seccomp=" + str(Path(mount["Source"]) / rel)

    def config(self, spec_path: Path, cwd: Path, security: str) -> dict[str, Any]:
        hc = self.me.get("HostConfig") or {}
        host_config: dict[str, Any] = {
            "VolumesFrom": [self.me["Id"]],
            "NetworkMode": f"container:{self.me['Id']}",
            "SecurityOpt": [security],
        }
        if _ulimits(hc.get("Ulimits")):
            host_config["Ulimits"] = _ulimits(hc.get("Ulimits"))
        for key in ("CapAdd", "CapDrop"):
            if hc.get(key):
                host_config[key] = hc[key]
        return {
            "Image": self.me["Image"],
            "Entrypoint": [sys.executable, "-m", "ci_gate.scenario.sibling"],
            "Cmd": [str(spec_path)],
            "WorkingDir": str(cwd),
            "User": (self.me.get("Config") or {}).get("User") or "",
            "Labels": {LABEL: self.me["Id"]},
            "HostConfig": host_config,
        }


@dataclass
class Plan:
    """Where the traces will run, decided (and io_uring probed) before anything is recorded.

    ``placement`` is updated in place as traces are made: it ends up saying where they ran.
    """

    placement: dict[str, Any]
    sibling: Sibling | None = None
    say: Log = field(default=lambda _msg: None)

    def trace(
        self,
        argv: list[str],
        *,
        out_dir: Path,
        cwd: Path,
        env: dict[str, str],
        timeout: float,
        suffix: str = "",
        max_bytes: int | None = None,
        extra_flags: tuple[str, ...] = (),
        follow: tracer.Follow | None = None,
    ) -> Traced:
        """:func:`tracer.trace` (same arguments) here, or in the sibling container.

        `follow` reads the trace while it is written here; in a sibling container
        the trace is read after the run (the caller then does it).
        """
        kw: dict[str, Any] = {
            "out_dir": out_dir,
            "cwd": cwd,
            "env": env,
            "timeout": timeout,
            "suffix": suffix,
            "max_bytes": max_bytes,
        }
        if extra_flags:
            kw["extra_flags"] = list(extra_flags)
        if self.sibling is None:
            return Traced(tracer.trace(argv, follow=follow, **kw), self.placement)
        probe = str(self.placement["io_uring_probe"])
        try:
            run, info = _relaunch(self.sibling, argv, kw, probe=probe, say=self.say)
        except _NotStarted as exc:
            # Once is enough: later repeats trace here straight away.
            self.sibling = None
            self.say(f"relaunch failed before the target started ({exc}); tracing here")
            self.placement.update(where="here", relaunch=f"failed: {exc}")
            traced = Traced(tracer.trace(argv, **kw), self.placement)
            traced.problems.append(
                {
                    "code": "sibling-failed",
                    "severity": "warning",
                    "message": f"io_uring_setup fails in this container ({probe}) and the "
                    f"relaunch in a sibling container failed: {exc}. The trace was made here, "
                    "where io_uring is blocked; use host mode (host/action.yml) to measure "
                    "io_uring.",
                }
            )
            return traced
        self.placement.update(info)
        return Traced(run, self.placement)


def notes(placement: dict[str, Any]) -> list[str]:
    """What the report should say about where the trace ran."""
    if placement.get("where") != "sibling":
        return []
    return [
        f"Traced in a sibling container: io_uring_setup fails in the action's container "
        f"({placement.get('io_uring_probe_action_container')}, its seccomp profile), so "
        "strace and the scenario ran in a container of the same image and volumes whose "
        "profile is Docker's default plus the io_uring syscalls."
    ]


def plan(*, out_dir: Path, cwd: Path, roots: Sequence[Path] = (), log: Log | None = None) -> Plan:
    """Probe io_uring_setup here and, where it is refused, find a sibling to trace in.

    Call it before recording anything about the traced step: the probe sets up (and closes)
    a ring of its own.
    """
    say: Log = log if log is not None else (lambda _msg: None)
    probe = environment.probe_io_uring()
    placement: dict[str, Any] = {"where": "here", "io_uring_probe": probe}
    if probe not in BLOCKED:
        return Plan(placement, None, say)
    try:
        sib = Sibling.find(say)
        for path in (out_dir.resolve(), cwd.resolve(), *(r.resolve().parent for r in roots)):
            sib.shared(path)
    except _Unavailable as exc:
        say(f"io_uring_setup fails here with {probe}; tracing here anyway: {exc}")
        placement["relaunch"] = f"not attempted: {exc}"
        return Plan(placement, None, say)
    say(f"io_uring_setup fails here with {probe}; tracing in a sibling container that allows it")
    return Plan(placement, sib, say)


class _NotStarted(Exception):
    """The sibling failed before the target ran: tracing here is still possible."""


def _relaunch(
    sib: Sibling, argv: list[str], kw: dict[str, Any], *, probe: str, say: Log
) -> tuple[tracer.TraceRun, dict[str, Any]]:
    """Trace in a new sibling container; the TraceRun and what to record about it."""
    out_dir, cwd, timeout = Path(kw["out_dir"]).resolve(), Path(kw["cwd"]), float(kw["timeout"])
    spec_path, result_path = out_dir / SPEC_NAME, out_dir / RESULT_NAME
    result_path.unlink(missing_ok=True)
    spec = {
        "argv": argv,
        "trace": {**kw, "out_dir": str(out_dir), "cwd": str(cwd.resolve())},
        "result": str(result_path),
    }
    cid: str | None = None
    try:
        try:
            # Owner-only: the target's environment is in it.
            fd = os.open(spec_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(spec, f)
            security = sib.seccomp_option(out_dir)
            cid = sib.engine.create(sib.config(spec_path, cwd.resolve(), security))
            sib.engine.start(cid)
        except (EngineError, _Unavailable, OSError) as exc:
            raise _NotStarted(str(exc)) from exc
        say(f"relaunch: sibling container {cid[:12]} started")
        try:
            status = sib.engine.wait(cid, timeout + WAIT_GRACE)
        except EngineError as exc:
            raise MeasureError(
                "sibling-failed",
                f"waiting for the sibling container failed "
                f"(the scenario may have run past {timeout + WAIT_GRACE:g}s): "
                f"{exc}",
            ) from exc
        result = _read_result(result_path)
        if result is None or result.get("phase") != "done":
            logs = _safe_logs(sib.engine, cid)
            if result is None:
                raise _NotStarted(
                    f"the sibling exited with status {status} before tracing "
                    f"anything; its output: {logs[-1500:].strip() or '(none)'}"
                )
            raise MeasureError(
                "sibling-failed",
                f"the sibling container stopped (status {status}) while tracing; no result",
                logs[-4000:],
            )
    finally:
        if cid is not None:
            with contextlib.suppress(EngineError):
                sib.engine.remove(cid)
        for p in (spec_path, result_path, out_dir / PROFILE_NAME):
            with contextlib.suppress(OSError):
                p.unlink()
    if "error" in result:
        err = result["error"]
        raise MeasureError(str(err.get("code")), str(err.get("message")), err.get("detail"))
    run = _run_from_json(result["run"])
    inside = result.get("environment", {})
    info = {
        "where": "sibling",
        "io_uring_probe": inside.get("io_uring_probe"),
        "io_uring_probe_action_container": probe,
        "seccomp": inside.get("seccomp"),
        "seccomp_profile": f"Docker default ({seccomp_profile.DEFAULT_PROFILE_VERSION}) "
        "plus io_uring_setup, io_uring_enter, io_uring_register",
        "engine": _engine_name(sib.version),
        "image": sib.me.get("Image"),
    }
    return run, info


def _run_to_json(run: tracer.TraceRun) -> dict[str, Any]:
    return {f.name: _plain(getattr(run, f.name)) for f in dataclasses.fields(run)}


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


def _run_from_json(data: dict[str, Any]) -> tracer.TraceRun:
    hints = typing.get_type_hints(tracer.TraceRun)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(tracer.TraceRun):
        if f.name in data:
            kwargs[f.name] = Path(data[f.name]) if hints[f.name] is Path else data[f.name]
    return tracer.TraceRun(**kwargs)


def _read_result(path: Path) -> dict[str, Any] | None:
    try:
        out = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return out if isinstance(out, dict) else None


def _safe_logs(engine: Engine, cid: str) -> str:
    try:
        return engine.logs(cid)
    except EngineError as exc:
        return f"(no logs: {exc})"


# -- inside the sibling ----------------------------------------------------------------------


def _write_json(path: Path, value: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)


def child(spec_path: Path) -> int:
    """Run in the sibling: trace as :func:`tracer.trace` does, report the outcome as JSON."""
    spec = json.loads(spec_path.read_text())
    result_path = Path(spec["result"])
    result: dict[str, Any] = {
        "phase": "started",
        "environment": {
            "io_uring_probe": environment.probe_io_uring(),
            "seccomp": environment.seccomp_mode(),
        },
    }
    _write_json(result_path, result)
    try:
        kw = dict(spec["trace"])
        kw.update(out_dir=Path(kw["out_dir"]), cwd=Path(kw["cwd"]))
        result["run"] = _run_to_json(tracer.trace(list(spec["argv"]), **kw))
    except MeasureError as exc:
        result["error"] = {"code": exc.code, "message": exc.message, "detail": exc.detail}
    result["phase"] = "done"
    _write_json(result_path, result)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m ci_gate.scenario.sibling SPEC.json", file=sys.stderr)
        sys.exit(2)
    sys.exit(child(Path(sys.argv[1])))
