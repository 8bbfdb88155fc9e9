"""The bundles and the image's entry point build offline and serve every function the
way the cloud runtime starts it (no Docker engine here: the files the Dockerfile copies
are staged and its entry point runs on them)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pytest
from _terraform import FUNCTIONS, ROOT, module
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from shared.api.identity import DEV_AUDIENCE, DEV_INVOKER, DevKeys

BIN = Path(sys.executable).parent
DOCKERFILE = ROOT / "Dockerfile"
RUNTIME_LOCK = ROOT / "requirements.runtime.lock"
MAIN_LOCK = ROOT / "requirements.lock"
START_TIMEOUT = 25.0


def pins(path: Path) -> dict[str, str]:
    """``name==version`` lines of a requirements file, by canonical name."""
    found = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)", path.read_text(), re.M)
    return {canonicalize_name(name): version for name, version in found}


def health_path(function: str) -> str:
    return str(module().locals["functions"][function]["health_path"])


# -- building ----------------------------------------------------------------------------


def build(out: Path) -> Path:
    subprocess.run(
        [sys.executable, str(ROOT / "infra" / "bundle.py"), "--out", str(out)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return out


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("bundles"))


def dockerfile_copies() -> list[tuple[str, str]]:
    """(source in the build context, destination in the image) of every COPY."""
    return re.findall(r"^COPY\s+(\S+)\s+(\S+)\s*$", DOCKERFILE.read_text(), re.M)


@pytest.fixture(scope="module")
def image_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image's /app: exactly what the Dockerfile copies (the pip install of the
    runtime lock is the test's own environment, checked against the lock below)."""
    root = tmp_path_factory.mktemp("image")
    for source, destination in dockerfile_copies():
        target = root / destination.lstrip("/")
        if (ROOT / source).is_dir():
            shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / source, target)
    return root / "app"


def test_bundles_hold_the_function_the_core_package_and_pinned_requirements(
    bundles: Path,
) -> None:
    runtime = pins(RUNTIME_LOCK)
    shared = sorted(
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "shared").rglob("*.py")
        if "__pycache__" not in p.parts
    )
    for function in FUNCTIONS:
        bundle = bundles / function
        main = (ROOT / "functions" / function / "main.py").read_bytes()
        assert (bundle / "main.py").read_bytes() == main
        packaged = sorted(p.relative_to(bundle).as_posix() for p in (bundle / "shared").rglob("*"))
        assert [p for p in packaged if p.endswith(".py")] == shared
        assert not [p for p in packaged if "__pycache__" in p or p.endswith(".pyc")]
        assert not [p for p in packaged if "_grpc_count" in p], "benchmark code is not shipped"
        assert pins(bundle / "requirements.txt") == runtime
        with zipfile.ZipFile(bundles / f"{function}.zip") as archive:
            names = sorted(archive.namelist())
        on_disk = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())
        assert names == on_disk


def test_bundle_manifests_name_the_target_the_service_runs(bundles: Path) -> None:
    for function in FUNCTIONS:
        manifest = json.loads((bundles / function / "bundle.json").read_text())
        assert manifest["function"] == function
        if function == "status-stream":
            assert manifest["target"] == "app"
            procfile = (bundles / function / "Procfile").read_text()
            assert procfile == "web: " + " ".join(manifest["command"]) + "\n"
        else:
            assert manifest["target"] == function.replace("-", "_")
            assert manifest["command"][:1] == ["functions-framework"]
            assert "--asgi" in manifest["command"]


def test_bundle_zips_are_reproducible(tmp_path: Path) -> None:
    first, again = build(tmp_path / "first"), build(tmp_path / "again")
    for function in FUNCTIONS:
        zipped = (first / f"{function}.zip").read_bytes()
        assert zipped == (again / f"{function}.zip").read_bytes(), function


# -- the runtime lock ---------------------------------------------------------------------


def runtime_closure() -> set[str]:
    """Distributions the project's runtime dependencies need, from the installed
    metadata (the environment make install built from requirements.lock)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    environment = {**default_environment(), "python_version": "3.11", "extra": ""}
    pending = [Requirement(spec) for spec in project["dependencies"]]
    seen: set[str] = set()
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in seen or (requirement.marker and not requirement.marker.evaluate(environment)):
            continue
        seen.add(name)
        for spec in metadata.requires(name) or []:
            dependency = Requirement(spec)
            wanted_by = [environment] + [{**environment, "extra": e} for e in requirement.extras]
            if not dependency.marker or any(map(dependency.marker.evaluate, wanted_by)):
                pending.append(dependency)
    return seen


def test_runtime_lock_pins_what_the_main_lock_pins() -> None:
    runtime, main = pins(RUNTIME_LOCK), pins(MAIN_LOCK)
    assert runtime, "requirements.runtime.lock is empty"
    assert {name: main.get(name) for name in runtime} == runtime, "make lock regenerates both"


def test_runtime_lock_is_the_runtime_closure_without_dev_tools() -> None:
    runtime = set(pins(RUNTIME_LOCK))
    closure = runtime_closure()
    assert closure - runtime == set(), "missing from requirements.runtime.lock: run make lock"
    assert runtime - closure == set(), "not needed at run time"
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    dev_tools = {
        canonicalize_name(Requirement(s).name) for s in dev["optional-dependencies"]["dev"]
    }
    assert not (runtime & dev_tools), runtime & dev_tools


# -- the image ----------------------------------------------------------------------------


def test_dockerfile_builds_a_slim_non_root_image_from_the_runtime_lock() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert "requirements.runtime.lock" in text and "requirements.lock " not in text
    assert re.search(r"pip install .*requirements\.runtime\.lock", text)
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert re.search(r'^ENTRYPOINT \["/bin/sh", "/app/entrypoint.sh"\]', text, re.M)
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    for source, _ in dockerfile_copies():
        assert f"!{source.rstrip('/')}" in {line.rstrip("/") for line in ignored}, source


# -- serving ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """One function served in a subprocess (its own process group)."""

    name: str
    command: list[str]
    cwd: Path
    env: dict[str, str]
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_ready(self, path: str, deadline: float) -> None:
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(self.url(path), timeout=1) as response:
                    if response.status == 200:
                        return
            except urllib.error.HTTPError as refused:
                refused.close()
                break
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        raise AssertionError(f"{self.name} did not answer {path}:\n{self.log.read_text()}")

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)

    def wait_stopped(self) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)


DEV_KEYS = DevKeys.generate()


def server_env(pythonpath: Path, db: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("WFE_", "FUNCTION_", "GOOGLE_"))
    }
    key_file = db.with_suffix(".key.pem")  # the dev verifier's key: the tests mint with it
    key_file.write_text(DEV_KEYS.private_pem)
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(pythonpath),
        WFE_BACKEND="local",
        WFE_DB_PATH=str(db),
        WFE_DEV_KEY_FILE=str(key_file),
    )
    return env


def bundle_server(bundles: Path, function: str, scratch: Path) -> Server:
    """The bundle's own command (bundle.json, the Procfile's for status-stream)."""
    bundle = bundles / function
    port = free_port()
    command = json.loads((bundle / "bundle.json").read_text())["command"]
    command = [str(port) if part == "$PORT" else part for part in command]
    env = server_env(bundle, scratch / f"bundle-{function}.db")
    return Server(f"bundle {function}", command, bundle, env, port, scratch / f"b-{function}.log")


def image_server(app: Path, function: str, scratch: Path) -> Server:
    """``ENTRYPOINT ["/bin/sh", "/app/entrypoint.sh"]`` with the service's argument."""
    port = free_port()
    env = server_env(app, scratch / f"image-{function}.db")
    env["PORT"] = str(port)
    command = ["/bin/sh", str(app / "entrypoint.sh"), function]
    return Server(f"image {function}", command, app, env, port, scratch / f"i-{function}.log")


@pytest.fixture(scope="module")
def servers(
    bundles: Path, image_tree: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[tuple[str, str], Server]]:
    """Every function twice, from its bundle and from the image's entry point, started
    together (each takes about a second to import)."""
    scratch = tmp_path_factory.mktemp("servers")
    started: dict[tuple[str, str], Server] = {}
    for function in FUNCTIONS:
        started["bundle", function] = bundle_server(bundles, function, scratch)
        started["image", function] = image_server(image_tree, function, scratch)
    try:
        for server in started.values():
            server.start()
        deadline = time.monotonic() + START_TIMEOUT
        for (_, function), server in started.items():
            server.wait_ready(health_path(function), deadline)
        yield started
    finally:
        for server in started.values():
            server.terminate()
        for server in started.values():
            server.wait_stopped()


def get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        body = json.loads(response.read())
    assert isinstance(body, dict)
    return body


@pytest.mark.parametrize("origin", ["bundle", "image"])
@pytest.mark.parametrize("function", FUNCTIONS)
def test_function_serves_its_health_probe(
    servers: dict[tuple[str, str], Server], origin: str, function: str
) -> None:
    """The path Terraform's startup and liveness probes use answers 200."""
    server = servers[origin, function]
    body = get_json(server.url(health_path(function)))
    assert body["status"] == "ok"


@pytest.mark.parametrize("origin", ["bundle", "image"])
def test_execute_step_rejects_an_undecodable_task(
    servers: dict[tuple[str, str], Server], origin: str
) -> None:
    """400, which Cloud Tasks retries until the queue's max attempts (the caller's token
    checked first: without one, 401)."""
    url = servers[origin, "execute-step"].url("/")
    token = DEV_KEYS.mint(DEV_AUDIENCE, DEV_INVOKER)
    unsigned = urllib.request.Request(url, data=b"not a task", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(unsigned, timeout=5)
    refused.value.close()
    assert refused.value.code == 401
    headers = {"Authorization": f"Bearer {token}"}
    request = urllib.request.Request(url, data=b"not a task", method="POST", headers=headers)
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=5)
    answer.value.close()
    assert answer.value.code == 400


def test_the_management_api_is_the_create_target(servers: dict[tuple[str, str], Server]) -> None:
    document = get_json(servers["image", "create"].url("/api/v1/openapi.json"))
    assert str(document["openapi"]).startswith("3.")


def test_entry_point_refuses_an_unknown_function(image_tree: Path) -> None:
    result = subprocess.run(
        ["/bin/sh", str(image_tree / "entrypoint.sh"), "no-such-function"],
        cwd=image_tree,
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.returncode == 64 and "usage" in result.stderr
