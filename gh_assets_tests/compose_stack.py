"""docker-compose.yml on a real Docker engine, for test_compose.py and ``make test-compose``.

A Docker engine is used if one answers; else, as root with Debian's ``docker.io``, ``dockerd`` is
started here in its own process group and stopped by its PID. Registry images are made locally
when they cannot be pulled (deploy/base-images/build.sh). The project's image is built from its
own Dockerfile with the classic builder; the host's CA bundle reaches only the build's first stage
(deploy/certs/ of a copy of the build context, never of the work tree), for builds behind a
TLS-intercepting proxy. The stack runs on a bridge network of its own marked internal: nothing in
it reaches beyond this machine, and the tests reach the containers by their addresses.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import yaml

from gh_assets_devtools.dagster_graphql import DagsterGraphQL
from gh_assets_devtools.services import running

REPO = Path(__file__).resolve().parents[1]
# The image's build context: what the Dockerfile copies (and .dockerignore lets through).
CONTEXT = (
    "Dockerfile",
    ".dockerignore",
    "pyproject.toml",
    "uv.lock",
    "README.md",
    "gh_assets",
    "deploy",
    "devtools",
)
HOST_CA = Path(os.environ.get("GH_ASSETS_BUILD_CA", "/etc/ssl/certs/ca-certificates.crt"))
IMAGE = "gh-assets"
# The Dockerfile's targets and their images (docker-compose.yml): the runtime for every Dagster
# process, the runtime plus the devtools for the stand-in.
IMAGES = {"runtime": IMAGE, "standin": "gh-assets-standin"}


class DockerUnavailable(RuntimeError):
    """No Docker engine answers and none can be started here."""


def _engine_answers(env: Mapping[str, str]) -> bool:
    done = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"],
        env=dict(env),
        capture_output=True,
        timeout=30,
        check=False,
    )
    return done.returncode == 0


def _socket_answers(path: Path) -> bool:
    """Whether a Docker API listens on the unix socket ``path`` (``GET /_ping`` -> OK)."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(2)
        sock.connect(str(path))
        sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        return sock.recv(4096).rstrip().endswith(b"OK")
    return False


def missing_tools() -> list[str]:
    """The Debian packages this machine lacks for the compose test."""
    tools = {"docker": "docker.io", "docker-compose": "docker-compose", "mmdebstrap": "mmdebstrap"}
    return sorted({package for tool, package in tools.items() if not shutil.which(tool)})


@contextlib.contextmanager
def docker_engine(workdir: Path) -> Iterator[dict[str, str]]:
    """The environment naming a Docker engine: one that answers already, else a ``dockerd``
    started here (root only), stopped on exit (SIGTERM, then SIGKILL)."""
    env = dict(os.environ)
    if shutil.which("docker") and _engine_answers(env):
        yield env
        return
    if not shutil.which("dockerd") or os.geteuid() != 0:
        raise DockerUnavailable("no Docker engine answers, and dockerd cannot be started here")
    # Short paths: containerd's sockets live under the exec root (unix socket paths <= 108).
    run_dir = Path(f"/run/gh-assets-docker-{os.getpid()}")
    run_dir.mkdir(parents=True, exist_ok=True)
    sock = run_dir / "docker.sock"
    command = [
        "dockerd",
        "--host",
        f"unix://{sock}",
        "--pidfile",
        str(run_dir / "dockerd.pid"),
        "--exec-root",
        str(run_dir / "exec"),
    ]
    try:
        with running(command, lambda: _socket_answers(sock), workdir / "dockerd.log", timeout=90,
                     grace=30):  # fmt: skip
            yield env | {"DOCKER_HOST": f"unix://{sock}"}
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def build_base_images(env: Mapping[str, str]) -> None:
    """python:3.11-slim, postgres:16 and redis:7.4: present, pulled, or made here."""
    script = REPO / "deploy" / "base-images" / "build.sh"
    done = subprocess.run(
        [str(script)], env=dict(env), timeout=1800, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"{script} failed: {done.stderr[-3000:]}")


def build_image(env: Mapping[str, str], workdir: Path, ca_bundle: Path | None = HOST_CA) -> None:
    """The project's images from its Dockerfile (classic builder: local base images, no pull), on
    a copy of the work tree's build context with ``ca_bundle`` as deploy/certs/build-ca.crt."""
    context = workdir / "context"
    shutil.rmtree(context, ignore_errors=True)
    context.mkdir()
    caches = shutil.ignore_patterns("__pycache__", "certs")
    for name in CONTEXT:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, context / name, ignore=caches)
        else:
            shutil.copy2(source, context / name)
    (context / "deploy" / "certs").mkdir()
    if ca_bundle is not None and ca_bundle.is_file():
        shutil.copy(ca_bundle, context / "deploy" / "certs" / "build-ca.crt")
    for target, image in IMAGES.items():
        done = subprocess.run(
            ["docker", "build", "-q", "--target", target, "-t", image, str(context)],
            env=dict(env) | {"DOCKER_BUILDKIT": "0"},
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        if done.returncode != 0:
            shutil.rmtree(context, ignore_errors=True)
            raise RuntimeError(f"docker build --target {target} failed: {done.stderr[-3000:]}")
    shutil.rmtree(context, ignore_errors=True)


class ComposeStack:
    """One compose project of docker-compose.yml plus an override, on the engine of ``env``."""

    api: DagsterGraphQL  # the webserver's GraphQL, once the stack is up

    def __init__(self, name: str, override: Mapping[str, object], env: Mapping[str, str], workdir):
        self.name = name
        self.env = dict(env)
        self.workdir = Path(workdir)
        self.override = self.workdir / "docker-compose.override.yml"
        self.override.write_text(yaml.safe_dump(dict(override), sort_keys=False))

    def compose(self, *args: str, timeout: float = 600, **env: str) -> str:
        """``docker-compose <args>`` on this project, ``env`` added to the shell's variables."""
        files = ["-f", str(REPO / "docker-compose.yml"), "-f", str(self.override)]
        command = ["docker-compose", "--project-directory", str(REPO), "-p", self.name, *files]
        done = subprocess.run(
            [*command, *args], env=self.env | env, capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            raise RuntimeError(f"docker-compose {' '.join(args)}: {done.stderr[-3000:]}")
        return done.stdout

    def docker(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run(
            ["docker", *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)}: {done.stderr[-2000:]}")
        return done.stdout

    def containers(self, service: str) -> list[str]:
        """The containers of ``service`` by name (``<project>_<service>_<n>``), sorted."""
        label = f"com.docker.compose.service={service}"
        project = f"com.docker.compose.project={self.name}"
        out = self.docker("ps", "-a", "--filter", f"label={label}", "--filter", f"label={project}",
                          "--format", "{{.Names}}")  # fmt: skip
        return sorted(out.split())

    def inspect(self, container: str) -> dict:
        return json.loads(self.docker("inspect", container))[0]

    def address(self, service: str) -> str:
        """The IP of ``service``'s (first) container on the stack's network."""
        networks = self.inspect(self.containers(service)[0])["NetworkSettings"]["Networks"]
        return next(iter(networks.values()))["IPAddress"]

    def hostnames(self, service: str) -> dict[str, str]:
        """Container hostname (what Celery's ``worker@%h`` names) -> container name."""
        return {self.inspect(c)["Config"]["Hostname"]: c for c in self.containers(service)}

    def health(self) -> dict[str, str]:
        """Each container's health (or state, when it has no healthcheck)."""
        seen = {}
        for container in self.containers_all():
            state = self.inspect(container)["State"]
            seen[container] = (state.get("Health") or {}).get("Status") or state["Status"]
        return seen

    def containers_all(self) -> list[str]:
        project = f"label=com.docker.compose.project={self.name}"
        return sorted(
            self.docker("ps", "-a", "--filter", project, "--format", "{{.Names}}").split()
        )

    def logs(self, services: Sequence[str] = (), chars: int = 4000) -> str:
        with contextlib.suppress(Exception):
            return self.compose("logs", "--no-color", "--tail", "60", *services)[-chars:]
        return "(no logs)"
