"""docker-compose.yml and deploy/ checked against the repo, without a Docker daemon.

Every file the compose file or the Dockerfile names must exist (files under deploy/secrets/ in
what `ruledrive credentials init` writes), every RULEDRIVE_* variable must be a NodeSettings field
with a valid value, ports must agree with the broker configs, the default services must be the
secure ones (TLS, logins, ACL) and the anonymous broker only behind the `dev` profile, the replay
service's command must parse with our CLI, and the node image must not install TensorFlow.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from policy.settings import NodeSettings, load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
NODE_SERVICES = ("node", "node-cpu", "replay", "node-dev")
SECURE_CLIENTS = ("node", "node-cpu", "replay")
SECRETS = "./deploy/secrets/"
CONTAINER_SECRETS = "/mosquitto/secrets/"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `ruledrive credentials init deploy/secrets` writes with its defaults (+ a vehicle)."""
    from ruledrive.credentials_cli import init_credentials

    out = tmp_path_factory.mktemp("secrets") / "secrets"
    init_credentials(out, ["car-1"], ["node-1", "node-2"])
    return out


def _host(src: str, generated: Path) -> Path:
    """A compose path on the host: deploy/secrets/... is generated, the rest is the repo."""
    if src.startswith(SECRETS):
        return generated / src[len(SECRETS) :]
    return ROOT / src


def _mounts(service: dict) -> dict[str, str]:
    """container path -> host source of a service's bind mounts."""
    out = {}
    for vol in service.get("volumes", []):
        src, dst = vol.split(":")[:2]
        out[dst] = src
    return out


def _container_file(service: dict, path: str, generated: Path) -> Path:
    """The host file a container path is mounted from (the file itself or a parent folder)."""
    for dst, src in _mounts(service).items():
        if path == dst or path.startswith(dst + "/"):
            return _host(src, generated) / path[len(dst) :].lstrip("/")
    raise AssertionError(f"{path} is not mounted")


def _env_file(service: dict, generated: Path) -> dict[str, str]:
    files = service.get("env_file", [])
    pairs: dict[str, str] = {}
    for f in [files] if isinstance(files, str) else files:
        path = _host(f, generated)
        assert path.is_file(), f"env_file {f} is not written by `ruledrive credentials init`"
        for line in path.read_text().splitlines():
            key, _, value = line.partition("=")
            pairs[key] = shlex.split(value)[0]
    return pairs


def _dockerfile(service: dict) -> Path:
    build = service["build"]
    return ROOT / build["context"] / build.get("dockerfile", "Dockerfile")


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    lines = [ln for ln in path.read_text().splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _env_pairs(args: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in shlex.split(args))


def test_services_and_dependencies(compose: dict) -> None:
    services = compose["services"]
    assert {"mosquitto", "node", "replay"} <= set(services)
    assert services["mosquitto"]["image"].startswith("eclipse-mosquitto:2")
    assert "replay" in services["replay"]["profiles"], "replay must sit behind a profile"
    assert "profiles" not in services["node"], "the node starts with a plain `docker compose up`"
    for name, svc in services.items():
        for dep in svc.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown service {dep}"


def test_build_contexts_and_dockerfiles_exist(compose: dict) -> None:
    for name, svc in compose["services"].items():
        if "build" not in svc:
            continue
        assert (ROOT / svc["build"]["context"]).is_dir(), name
        assert _dockerfile(svc).is_file(), f"{name}: {_dockerfile(svc)} missing"


def test_volume_sources_exist(compose: dict, generated: Path) -> None:
    declared = set(compose.get("volumes") or {})
    for name, svc in compose["services"].items():
        for vol in svc.get("volumes", []):
            src = vol["source"] if isinstance(vol, dict) else vol.split(":")[0]
            if src.startswith((".", "/")):
                assert _host(src, generated).exists(), f"{name}: bind source {src} missing"
            else:
                assert src in declared, f"{name}: named volume {src} is not declared"
    for cfg in (compose.get("configs") or {}).values():
        assert (ROOT / cfg["file"]).is_file()


def _directives(conf: str) -> list[tuple[str, str]]:
    return [
        (k, v.strip())
        for k, _, v in (
            ln.strip().partition(" ") for ln in conf.splitlines() if ln.strip() and ln[0] != "#"
        )
    ]


def test_default_broker_is_tls_with_logins_acl_and_bound_client_ids(
    compose: dict, generated: Path
) -> None:
    conf = (ROOT / "deploy/mosquitto.conf").read_text()
    d = dict(_directives(conf))
    assert [v for k, v in _directives(conf) if k == "listener"] == ["8883 0.0.0.0"]
    assert d["allow_anonymous"] == "false" and d["use_username_as_clientid"] == "true"
    assert d["require_certificate"] == "false" and d["tls_version"] == "tlsv1.2"
    assert d["set_tcp_nodelay"] == "true", "Nagle adds ~40 ms per decision"
    svc = compose["services"]["mosquitto"]
    assert "profiles" not in svc, "the secure broker is the default one"
    assert {p.split(":")[-1] for p in svc["ports"]} == {"8883"}
    assert _mounts(svc)["/mosquitto/config/mosquitto.conf"] == "./deploy/mosquitto.conf"
    # Every file the config and the health check name is written by the credentials command
    # and copied by the entrypoint for the mosquitto user.
    entrypoint = (ROOT / "deploy/mosquitto-entrypoint.sh").read_text()
    health = " ".join(svc["healthcheck"]["test"])
    named = {
        v
        for k, v in d.items()
        if k in ("cafile", "certfile", "keyfile", "password_file", "acl_file")
    }
    named |= set(re.findall(r"/mosquitto/secrets/[\w.]+", health))
    assert len(named) == 6, named
    source = re.search(r"^SRC=(\S+)", entrypoint, re.M)
    assert source and _mounts(svc)[source.group(1)] == SECRETS + "broker"
    for path in named:
        assert path.startswith(CONTAINER_SECRETS), path
        name = path[len(CONTAINER_SECRETS) :]
        assert (generated / "broker" / name).is_file(), f"{name} is not generated"
        assert f"$SRC/{name}" in entrypoint, f"the entrypoint does not copy {name}"
    assert (
        "-u health" in health
        and "health" in json.loads((generated / "users.json").read_text())["users"]
    )
    entry = svc["entrypoint"]
    assert entry[-1] == "/ruledrive-entrypoint.sh"
    assert _mounts(svc)[entry[-1]] == "./deploy/mosquitto-entrypoint.sh"


def test_default_services_log_in_over_tls(compose: dict, generated: Path) -> None:
    users = json.loads((generated / "users.json").read_text())["users"]
    for name in SECURE_CLIENTS:
        svc = compose["services"][name]
        assert "dev" not in svc.get("profiles", []), name
        env = svc["environment"]
        assert env["RULEDRIVE_MQTT_URL"] == "mqtts://mosquitto:8883", name
        user = env["RULEDRIVE_MQTT_USERNAME"]
        from_file = _env_file(svc, generated)
        assert from_file["RULEDRIVE_MQTT_USERNAME"] == user and from_file["RULEDRIVE_MQTT_PASSWORD"]
        assert "RULEDRIVE_MQTT_PASSWORD" not in env, "passwords come from the env file only"
        assert _container_file(svc, env["RULEDRIVE_TLS_CA"], generated).is_file(), name
        if "RULEDRIVE_NODE_ID" in env:  # a node publishes status under its own login's id
            assert env["RULEDRIVE_NODE_ID"] == user and users[user] == "node", name
        else:
            assert users[user] == "replay", name


def test_anonymous_broker_only_on_the_dev_profile(compose: dict) -> None:
    conf = (ROOT / "deploy/mosquitto-dev.conf").read_text()
    d = dict(_directives(conf))
    assert d["allow_anonymous"] == "true" and d["listener"].startswith("1883")
    assert d["set_tcp_nodelay"] == "true"
    for name, svc in compose["services"].items():
        mounted = set(_mounts(svc).values())
        url = (svc.get("environment") or {}).get("RULEDRIVE_MQTT_URL", "")
        if "./deploy/mosquitto-dev.conf" in mounted or url.startswith("mqtt://"):
            assert svc.get("profiles") == ["dev"], f"{name} is anonymous but not dev-only"
            for port in svc.get("ports", []):
                assert str(port).startswith("127.0.0.1:"), f"{name}: {port} beyond loopback"
    assert compose["services"]["node-dev"]["environment"]["RULEDRIVE_MQTT_URL"] == (
        "mqtt://mosquitto-dev:1883"
    )


def test_secrets_stay_out_of_git_and_the_image() -> None:
    assert "deploy/secrets" in _dockerignore_text().split()
    probe = ["deploy/secrets/ca.key", "deploy/secrets/env/node-1.env", "deploy/secrets/README.md"]
    out = subprocess.run(
        ["git", "check-ignore", *probe], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if out.returncode == 128:
        pytest.skip(f"not a git checkout: {out.stderr.strip()}")
    assert set(out.stdout.split()) == set(probe[:2]), "secrets ignored, the README not"


def test_ports_are_valid_and_metrics_port_matches(compose: dict) -> None:
    for name, svc in compose["services"].items():
        for port in svc.get("ports", []):
            parts = str(port).split(":")
            *address, host, container = parts
            assert 0 < int(container) < 65536 and 0 < int(host) < 65536, (name, port)
            if (svc.get("environment") or {}).get("RULEDRIVE_METRICS_PORT") == container:
                # metrics are published on the host's loopback only
                assert address == ["127.0.0.1"], (name, port)
        metrics = (svc.get("environment") or {}).get("RULEDRIVE_METRICS_PORT")
        if metrics and metrics != "0":
            containers = {str(p).rpartition(":")[2] for p in svc.get("ports", [])}
            assert metrics in containers, f"{name}: metrics port {metrics} is not published"


def test_environment_is_node_settings(
    compose: dict, generated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fields = {f"RULEDRIVE_{k.upper()}" for k in NodeSettings.model_fields}
    for name in NODE_SERVICES:
        svc = compose["services"][name]
        # compose gives `environment` precedence over `env_file`
        env = {**_env_file(svc, generated), **svc["environment"]}
        assert set(env) <= fields, f"{name}: unknown settings {set(env) - fields}"
        for key, value in env.items():
            if key == "RULEDRIVE_TLS_CA":  # a container path: check the file it is mounted from
                value = str(_container_file(svc, value, generated))
            monkeypatch.setenv(key, str(value))
        load_settings()  # raises ConfigError on any invalid value
        for key in env:
            monkeypatch.delenv(key)


def test_gpu_reservation(compose: dict) -> None:
    devices = compose["services"]["node"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert "deploy" not in compose["services"]["node-cpu"]
    assert compose["services"]["node-cpu"]["environment"]["RULEDRIVE_PROVIDERS"] == "cpu"


def test_dockerfile_copies_existing_paths_and_sets_valid_env(
    compose: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _dockerfile(compose["services"]["node"])
    fields = {f"RULEDRIVE_{k.upper()}" for k in NodeSettings.model_fields}
    instructions = _instructions(path)
    base = [a for i, a in instructions if i == "ARG" and a.startswith("BASE_IMAGE=")]
    assert base and base[0].split("=", 1)[1].startswith("nvidia/cuda:12.")
    copied = set()
    for instr, args in instructions:
        if instr == "COPY":
            *sources, _dest = args.split()
            for src in sources:
                if src.startswith("--"):
                    continue
                copied.add(src.rstrip("/"))
                if src.startswith("models"):
                    continue  # models/*.onnx is produced by training; the folder must exist
                assert (ROOT / src).exists(), f"COPY {src}: not in the repo"
        if instr == "ENV":
            for key, value in _env_pairs(args).items():
                if key.startswith("RULEDRIVE_"):
                    assert key in fields, f"ENV {key} is not a NodeSettings field"
                    monkeypatch.setenv(key, value)
    assert "models" in copied, "the image must ship models/"
    load_settings()
    pyproject = __import__("tomllib").loads((ROOT / "pyproject.toml").read_text())
    for package in pyproject["tool"]["setuptools"]["packages"]:
        assert package in copied, f"package {package} is not copied into the image"


def test_dockerfile_installs_no_tensorflow(compose: dict) -> None:
    path = _dockerfile(compose["services"]["node"])
    installs = []
    for instr, args in _instructions(path):
        if instr == "RUN":
            installs += [c for c in re.split(r"&&|;", args) if "pip install" in c]
    assert any("onnxruntime" in c or "ORT_PACKAGE" in c for c in installs)
    assert any(re.search(r"pip install \.(\s|$)", c) for c in installs), "pip install . missing"
    for cmd in installs:
        assert not re.search(r"tensorflow|keras|tf2onnx|\[.*train.*\]", cmd, re.I), cmd
    args = dict(a.split("=", 1) for i, a in _instructions(path) if i == "ARG" and "=" in a)
    assert args["ORT_PACKAGE"] == "onnxruntime-gpu"


def _dockerignore_text() -> str:
    p = ROOT / "deploy/Dockerfile.node.dockerignore"
    return p.read_text() if p.exists() else ""


def test_dockerignore_keeps_venv_out() -> None:
    ignored = _dockerignore_text().split()
    assert ".venv" in ignored and ".git" in ignored


def test_replay_command_parses_with_our_cli(compose: dict) -> None:
    from ruledrive.cli import build_parser

    cmd = compose["services"]["replay"]["command"]
    assert cmd[0] == "ruledrive"
    args = build_parser().parse_args(cmd[1:])
    assert args.command == "replay"
    for path in args.recordings:
        mounted = {
            v.split(":")[1]: v.split(":")[0] for v in compose["services"]["replay"]["volumes"]
        }
        container_dir = str(Path(path).parent)
        assert container_dir in mounted, f"{path} is not on a mounted volume"
        host = ROOT / mounted[container_dir] / Path(path).name
        if not host.exists():
            pytest.skip(f"{host} not generated yet")
