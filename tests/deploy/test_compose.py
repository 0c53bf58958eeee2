"""docker-compose.yml and deploy/ checked against the repo, without a Docker daemon.

Every file the compose file or the Dockerfile names must exist, every RULEDRIVE_* variable must be
a NodeSettings field with a valid value, ports must agree with the broker config, the replay
service's command must parse with our CLI, and the node image must not install TensorFlow.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from policy.settings import NodeSettings, load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
NODE_SERVICES = ("node", "node-cpu", "replay")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


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


def test_volume_sources_exist(compose: dict) -> None:
    declared = set(compose.get("volumes") or {})
    for name, svc in compose["services"].items():
        for vol in svc.get("volumes", []):
            src = vol["source"] if isinstance(vol, dict) else vol.split(":")[0]
            if src.startswith((".", "/")):
                assert (ROOT / src).exists(), f"{name}: bind source {src} not in the repo"
            else:
                assert src in declared, f"{name}: named volume {src} is not declared"
    for cfg in (compose.get("configs") or {}).values():
        assert (ROOT / cfg["file"]).is_file()


def test_broker_port_matches_config_and_node_url(compose: dict) -> None:
    conf = (ROOT / "deploy/mosquitto.conf").read_text()
    listeners = re.findall(r"^listener\s+(\d+)", conf, re.M)
    assert listeners == ["1883"]
    assert re.search(r"^allow_anonymous\s+true", conf, re.M)
    assert re.search(r"^set_tcp_nodelay\s+true", conf, re.M), "Nagle adds ~40 ms per decision"
    published = {p.split(":")[-1] for p in compose["services"]["mosquitto"]["ports"]}
    assert published == {"1883"}
    for name in NODE_SERVICES:
        url = compose["services"][name]["environment"]["RULEDRIVE_MQTT_URL"]
        assert url == "mqtt://mosquitto:1883", name


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


def test_environment_is_node_settings(compose: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    fields = {f"RULEDRIVE_{k.upper()}" for k in NodeSettings.model_fields}
    for name in NODE_SERVICES:
        env = compose["services"][name]["environment"]
        assert set(env) <= fields, f"{name}: unknown settings {set(env) - fields}"
        for key, value in env.items():
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
