"""The deployment files agree with the package, since images cannot be built nor VMs booted
here: Dockerfile.cpu/gpu, docker/compose.yml, the Fedora CoreOS Butane config
(docker/coreos/*.bu) and the Vagrantfile (checked by `vagrant validate`, Debian's package)."""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml

from elasticthought.cli import build_parser
from elasticthought.config import Config

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = ["Dockerfile.cpu", "Dockerfile.gpu"]
ET_VARIABLES = {"ET_" + f.name.upper() for f in fields(Config)}
DEFAULT_PORT = Config().port
IMAGE_USER = "elasticthought"
BLOBS_MOUNT = "/var/lib/elasticthought/blobs"


# Dockerfiles ----------------------------------------------------------------------------------


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        text = (pending + line).strip()
        pending = ""
        word, _, rest = text.partition(" ")
        out.append((word.upper(), rest.strip()))
    assert not pending, f"{path.name}: dangling continuation"
    return out


def env_pairs(args: str) -> dict[str, str]:
    return dict(token.split("=", 1) for token in shlex.split(args))


def console_scripts() -> dict[str, str]:
    """setup.py's console_scripts, read from its source (the venv may hold another checkout)."""
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "entry_points":
            value = ast.literal_eval(node.value)
            return dict(line.replace(" ", "").split("=", 1) for line in value["console_scripts"])
    raise AssertionError("setup.py has no entry_points")


def parses(argv: list[str]) -> Any:
    """Our CLI's parse of `argv` (argparse exits on an unknown flag or command)."""
    try:
        return build_parser().parse_args(argv)
    except SystemExit as exc:  # pragma: no cover - the assertion message is the point
        raise AssertionError(f"the CLI refuses {argv}") from exc


def test_console_scripts_include_the_seed_name() -> None:
    scripts = console_scripts()
    assert scripts["elasticthought"] == scripts["elastic-thought"] == "elasticthought.cli:main"


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_agrees_with_the_package(name: str) -> None:
    steps = instructions(REPO / name)
    kinds = [kind for kind, _ in steps]
    assert kinds[0] == "FROM" and kinds.count("ENTRYPOINT") == 1 and kinds.count("CMD") == 1
    env: dict[str, str] = {}
    for kind, args in steps:
        if kind == "ENV":
            env.update(env_pairs(args))
    # Every ET_* variable it sets is a real option, with a value the option accepts.
    et_env = {k: v for k, v in env.items() if k.startswith("ET_")}
    assert set(et_env) <= ET_VARIABLES, set(et_env) - ET_VARIABLES
    assert et_env["ET_HOST"] == "0.0.0.0"
    # The entry point is our console script; the default command parses with our CLI.
    (entrypoint,) = [json.loads(a) for k, a in steps if k == "ENTRYPOINT"]
    (cmd,) = [json.loads(a) for k, a in steps if k == "CMD"]
    assert entrypoint[0] in console_scripts()
    assert parses(cmd).command == "serve"
    # It listens where it says, and the health check asks the service's health route.
    (expose,) = [a for k, a in steps if k == "EXPOSE"]
    assert int(expose) == int(et_env["ET_PORT"]) == DEFAULT_PORT
    (health,) = [a for k, a in steps if k == "HEALTHCHECK"]
    assert "/health" in health and "ET_PORT" in health
    # Torch is installed at the pin of requirements.txt; the files it copies exist.
    pins = dict(
        line.split("==")
        for line in (REPO / "requirements.txt").read_text().splitlines()
        if "==" in line
    )
    run = " ".join(a for k, a in steps if k == "RUN")
    assert f"torch=={pins['torch']}" in run
    for kind, args in steps:
        if kind == "COPY" and not args.startswith("--"):
            assert all((REPO / src).exists() for src in args.split()[:-1] if src != "."), args
    # It runs as the service user, who owns the blob folder the deployments mount a volume on
    # (a fresh named volume takes the image folder's owner).
    assert ("USER", IMAGE_USER) in steps
    assert f"install -d -o {IMAGE_USER} -g {IMAGE_USER} {BLOBS_MOUNT}" in run
    assert env["ET_DATA_DIR"] == str(Path(BLOBS_MOUNT).parent)


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_brings_the_web_apps_chart_library(name: str) -> None:
    """The image serves the web app with its plots: node_modules (the chart library that
    package.json names) come from a Node build stage, beside an editable install, which is where
    the app looks for them; the final image has no Node toolchain."""
    steps = instructions(REPO / name)
    froms = [i for i, (kind, _) in enumerate(steps) if kind == "FROM"]
    assert len(froms) == 2, "a Node stage, then the image"
    stage = steps[froms[0]][1].split()
    assert stage[0].startswith("node:") and stage[-2:] == ["AS", "webdeps"]
    stage_run = " ".join(a for k, a in steps[froms[0] : froms[1]] if k == "RUN")
    assert "npm ci --omit=dev" in stage_run
    image = steps[froms[1] :]
    assert ("COPY", "--from=webdeps /src/node_modules ./node_modules") in image
    assert "pip install --no-deps -e ." in " ".join(a for k, a in image if k == "RUN")
    runtime = json.loads((REPO / "package.json").read_text())["dependencies"]
    assert "chart.js" in runtime


def test_a_built_wheel_carries_the_web_app(tmp_path: Path) -> None:
    """A non-editable install serves the web app too: its static files are package data."""
    import sys
    import zipfile

    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(REPO)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("elasticthought-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    static = REPO / "elasticthought" / "web" / "static"
    expected = {
        "elasticthought/web/" + str(path.relative_to(static.parent))
        for path in static.rglob("*")
        if path.is_file()
    }
    assert expected and expected <= names, sorted(expected - names)


# docker/compose.yml ---------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "docker" / "compose.yml").read_text())


def sync_gateway_databases() -> set[str]:
    return set(json.loads((REPO / "docker" / "sync-gateway.json").read_text())["databases"])


def check_store_url(url: str, services: set[str]) -> None:
    """A Sync Gateway admin URL of a service on this network and a configured database."""
    match = re.fullmatch(r"http://([^:/]+):(\d+)/([^/]+)", url)
    assert match, url
    host, port, db = match.groups()
    assert host in services and port == "4985" and db in sync_gateway_databases(), url


def test_compose_services_agree_with_the_package(tmp_path: Path) -> None:
    spec = compose()
    services = spec["services"]
    ours = {n: s for n, s in services.items() if s.get("image", "").startswith("elasticthought")}
    assert {"serve", "worker"} <= set(ours)
    for name, service in ours.items():
        build = service["build"]
        assert (REPO / "docker" / build["context"] / build["dockerfile"]).is_file()
        args = parses(service["command"])
        assert args.command == name
        env = service["environment"]
        assert set(env) <= ET_VARIABLES, set(env) - ET_VARIABLES
        check_store_url(env["ET_STORE"], set(services))
        assert env["ET_BLOBS"] == f"file://{BLOBS_MOUNT}"
        assert any(v.endswith(":" + BLOBS_MOUNT) for v in service["volumes"])
        # The options parse as this command's flags would (a value the option accepts).
        flags = [f"--{k[3:].lower().replace('_', '-')}={v}" for k, v in env.items()]
        parses([name, *flags])
    serve_ports = [p.rsplit(":", 1)[1] for p in ours["serve"]["ports"]]
    assert serve_ports == [ours["serve"]["environment"]["ET_PORT"]] == [str(DEFAULT_PORT)]
    gateway = services["sync-gateway"]
    assert gateway["command"] == ["/etc/sync_gateway/sync-gateway.json"]
    source = gateway["volumes"][0].split(":")[0]
    assert (REPO / "docker" / source).resolve() == REPO / "docker" / "sync-gateway.json"
    assert ["4984:4984"] == gateway["ports"]  # the public port only; never the admin port


# docker/coreos/*.bu ---------------------------------------------------------------------------


def butane_files() -> list[Path]:
    found = sorted((REPO / "docker" / "coreos").glob("*.bu"))
    assert found, "no Butane config in docker/coreos"
    return found


def unit_lines(text: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(key + "=")]


@pytest.mark.parametrize("path", butane_files(), ids=lambda p: p.name)
def test_butane_config_runs_our_images_and_commands(path: Path) -> None:
    config = yaml.safe_load(path.read_text())
    assert config["variant"] == "fcos" and re.fullmatch(r"1\.\d+\.0", config["version"])
    files = {f["path"]: f for f in config["storage"]["files"]}
    for entry in files.values():  # `local:` files come from docker/ (butane --files-dir docker)
        local = entry["contents"].get("local")
        assert local is None or (REPO / "docker" / local).is_file(), local
    units = {u["name"]: u["contents"] for u in config["systemd"]["units"]}
    assert {"sync-gateway.service", "elasticthought.service"} <= set(units)
    workers = [n for n in units if n.endswith("worker@.service")]
    assert len(workers) == 1, "a worker@ template unit"

    env_file = files["/etc/elasticthought/env"]["contents"]["inline"]
    env = dict(line.split("=", 1) for line in env_file.splitlines() if line.strip())
    assert set(env) <= ET_VARIABLES, set(env) - ET_VARIABLES
    check_store_url(env["ET_STORE"], {"sync-gateway"})
    image = files["/etc/elasticthought/image.env"]["contents"]["inline"].strip()
    assert image.startswith("ET_IMAGE=")

    # systemd substitutes $VAR and %x itself: only ${ET_IMAGE} and %i are meant; a shell
    # variable must be written $$VAR.
    for name, text in units.items():
        for line in unit_lines(text, "ExecStart"):
            variables = set(re.findall(r"(?<!\$)\$(\{\w+\}|\w+)", line.replace("$$", "")))
            assert variables <= {"{ET_IMAGE}"}, (name, variables)
            assert set(re.findall(r"%(.)", line)) <= {"i"}, name

    expected = {"elasticthought.service": "serve", workers[0]: "worker"}
    for name, command in expected.items():
        (start,) = unit_lines(units[name], "ExecStart")
        podman, _, rest = start.partition(" run ")
        assert podman == "/usr/bin/podman"
        options, _, argv = rest.partition(" ${ET_IMAGE} ")
        assert parses(shlex.split(argv)).command == command
        assert (
            "--env-file /etc/elasticthought/env" in options
            and "--network elasticthought" in options
        )
        assert f":{BLOBS_MOUNT}" in options
        assert "EnvironmentFile=/etc/elasticthought/image.env" in units[name]
        assert "Requires=sync-gateway.service" in units[name]
    (api,) = unit_lines(units["elasticthought.service"], "ExecStart")
    assert f"-p {DEFAULT_PORT}:{DEFAULT_PORT}" in api
    assert "%i" in units[workers[0]]  # one container per instance

    (gateway,) = unit_lines(units["sync-gateway.service"], "ExecStart")
    compose_image = compose()["services"]["sync-gateway"]["image"]
    assert f"docker.io/{compose_image}" in gateway  # the same Sync Gateway as compose
    assert "-p 4984:4984" in gateway and "4985:" not in gateway
    mount = re.search(r"-v (\S+?):(\S+?):ro", gateway)
    assert mount and mount.group(1) in files and gateway.endswith(mount.group(2))
    assert files[mount.group(1)]["contents"]["local"] == "sync-gateway.json"


# Vagrantfile ----------------------------------------------------------------------------------


def vagrant() -> str:
    found = shutil.which("vagrant")
    if not found:
        message = "vagrant is not installed (Debian: apt-get install vagrant)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def validate(folder: Path) -> subprocess.CompletedProcess[str]:
    """`vagrant validate` of the Vagrantfile in `folder` (offline; no provider installed, so
    provider blocks are skipped), with Vagrant's state kept in `folder`."""
    env = {
        **os.environ,
        "VAGRANT_HOME": str(folder / "vagrant-home"),
        "VAGRANT_DOTFILE_PATH": str(folder / ".vagrant"),
        "VAGRANT_CHECKPOINT_DISABLE": "1",
    }
    return subprocess.run(
        [vagrant(), "validate", "--ignore-provider"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_vagrantfile_validates_and_sets_up_the_service(tmp_path: Path) -> None:
    text = (REPO / "Vagrantfile").read_text()
    assert 'config.vm.box = "debian/bookworm64"' in text
    assert "scripts/setup" in text and (REPO / "scripts" / "setup").is_file()
    assert "docker/elasticthought.service" in text
    assert (REPO / "docker" / "elasticthought.service").is_file()
    assert f"ET_PORT = {DEFAULT_PORT}" in text
    assert re.search(r'"forwarded_port", guest: ET_PORT, host: ET_PORT', text)
    good = tmp_path / "good"
    good.mkdir()
    shutil.copyfile(REPO / "Vagrantfile", good / "Vagrantfile")
    result = validate(good)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "validated successfully" in result.stdout
    # The check is real: a broken forwarded port is refused.
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "Vagrantfile").write_text(text.replace("guest: ET_PORT", "gust: ET_PORT"))
    refused = validate(broken)
    assert refused.returncode != 0 and "Forwarded port" in refused.stdout + refused.stderr
