"""docker-compose.yml and deploy/ checked against the repo, without a Docker daemon.

Every file the compose file or the Dockerfile names must exist (files under deploy/secrets/ in
what `ruledrive credentials init` writes), every RULEDRIVE_* variable must be a NodeSettings field
with a valid value, ports must agree with the broker configs, the default services must be the
secure ones (TLS, logins, ACL) and the anonymous brokers only behind the `dev` and `emqx`
profiles on the host's loopback, the replay services' commands must parse with our CLI, and the
node image must not install TensorFlow. Replicas: every node that shares a broker with another is
in the same share group, no two services that can run together share a login, and the `emqx`
profile is a 2-node EMQX 5 cluster (static seeds that name both nodes, node names that resolve on
the compose network, one cookie, a strategy that keeps a vehicle on one replica) with one node
replica on each EMQX node.
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
NODE_SERVICES = (
    "node",
    "node-2",
    "node-cpu",
    "replay",
    "node-dev",
    "node-emqx-1",
    "node-emqx-2",
    "replay-emqx",
)
SECURE_CLIENTS = ("node", "node-2", "node-cpu", "replay")
REPLAY_SERVICES = ("replay", "replay-emqx")
EMQX_NODES = ("emqx-1", "emqx-2")
# Anonymous plaintext brokers, and the profile each may run under (never a default service).
ANONYMOUS_PROFILES = {"mosquitto-dev": "dev", "emqx-1": "emqx", "emqx-2": "emqx"}
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


def test_anonymous_brokers_only_on_the_dev_and_emqx_profiles(compose: dict) -> None:
    conf = (ROOT / "deploy/mosquitto-dev.conf").read_text()
    d = dict(_directives(conf))
    assert d["allow_anonymous"] == "true" and d["listener"].startswith("1883")
    assert d["set_tcp_nodelay"] == "true"
    services = compose["services"]
    emqx = {n for n, svc in services.items() if svc.get("image", "").startswith("emqx/")}
    assert emqx == set(EMQX_NODES), "every EMQX broker here is anonymous: list it"
    for name, svc in services.items():
        mounted = set(_mounts(svc).values())
        url = (svc.get("environment") or {}).get("RULEDRIVE_MQTT_URL", "")
        broker = url.partition("://")[2].partition(":")[0]
        anonymous = (
            name in ANONYMOUS_PROFILES
            or "./deploy/mosquitto-dev.conf" in mounted
            or url.startswith("mqtt://")
        )
        if anonymous:
            want = ANONYMOUS_PROFILES.get(name) or ANONYMOUS_PROFILES.get(broker)
            assert want and svc.get("profiles") == [want], f"{name} is anonymous: {want} only"
            for port in svc.get("ports", []):
                assert str(port).startswith("127.0.0.1:"), f"{name}: {port} beyond loopback"
    assert services["node-dev"]["environment"]["RULEDRIVE_MQTT_URL"] == "mqtt://mosquitto-dev:1883"


def _node_services(compose: dict) -> dict[str, dict]:
    """The services that run a node (they publish under a node id)."""
    return {
        n: svc
        for n, svc in compose["services"].items()
        if "RULEDRIVE_NODE_ID" in (svc.get("environment") or {})
    }


def _broker_of(svc: dict) -> str:
    """The broker a service connects to; the nodes of one EMQX cluster count as one broker."""
    host = svc["environment"]["RULEDRIVE_MQTT_URL"].partition("://")[2].partition(":")[0]
    return "emqx" if host in EMQX_NODES else host


def _interpolate(value: object, shell: dict[str, str]) -> str:
    """A compose value as compose would make it from the shell's variables (``${NAME}``,
    ``${NAME:-default}``)."""

    def one(m: re.Match[str]) -> str:
        given = shell.get(m.group(1), "")
        return given if given or m.group(2) is None else m.group(2)

    return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}", one, str(value))


SHARE = "RULEDRIVE_SHARE_GROUP"


def test_replicas_on_one_broker_share_one_group(compose: dict) -> None:
    """Two nodes on one broker outside a common share group would both answer every frame: the
    nodes of one broker take their group from one expression. On the secure broker it comes from
    the shell and is off by default (any login could join a group there: docs/contract.md)."""
    by_broker: dict[str, list[str]] = {}
    for name, svc in _node_services(compose).items():
        by_broker.setdefault(_broker_of(svc), []).append(name)
    assert len(by_broker["mosquitto"]) >= 2 and len(by_broker["emqx"]) == 2, by_broker
    for broker, names in by_broker.items():
        if len(names) < 2:
            continue
        raw = {compose["services"][n]["environment"].get(SHARE) for n in names}
        assert len(raw) == 1 and None not in raw, f"{broker}: {names} in groups {raw}"
        group = _interpolate(raw.pop(), {SHARE: "ruledrive-nodes"})
        assert group, f"{broker}: replicas without a share group"
    node = compose["services"]["node"]["environment"][SHARE]
    assert _interpolate(node, {}) == "", "the default secure node must not join a share group"
    assert _interpolate(node, {SHARE: "g"}) == "g"


@pytest.mark.parametrize("key", ["RULEDRIVE_MQTT_USERNAME", "RULEDRIVE_NODE_ID"])
def test_no_two_services_that_run_together_share_a_login_or_node_id(
    compose: dict, key: str
) -> None:
    """One login (or client id = node id) holds one connection: a second one knocks the first
    off. Services that share one must sit behind different profiles (node-2 and node-cpu)."""
    holders: dict[str, list[str]] = {}
    for name, svc in compose["services"].items():
        value = (svc.get("environment") or {}).get(key)
        if value:
            holders.setdefault(value, []).append(name)
    for value, names in holders.items():
        profiles = [set(compose["services"][n].get("profiles", [])) for n in names]
        for i, a in enumerate(profiles):
            for b in profiles[i + 1 :]:
                assert a and b and not a & b, f"{names} share {key}={value} and can run together"


def test_emqx_profile_is_a_two_node_cluster_with_a_replica_on_each(compose: dict) -> None:
    services = compose["services"]
    names = {}
    for name in EMQX_NODES:
        svc = services[name]
        assert svc["image"].startswith("emqx/emqx:5"), svc["image"]
        assert svc["profiles"] == ["emqx"]
        env = svc["environment"]
        node_name = env["EMQX_NODE__NAME"]
        short, _, host = node_name.partition("@")
        assert short and "." in host, f"{name}: EMQX needs name@host with a dotted host"
        assert host in svc["networks"]["default"]["aliases"], f"{name}: {host} does not resolve"
        names[name] = node_name
        assert env["EMQX_CLUSTER__DISCOVERY_STRATEGY"] == "static"
        # A vehicle's frames stay on one replica: by the frame's topic (= the vehicle) or by the
        # publishing connection; round_robin or random would scatter them.
        assert env["EMQX_MQTT__SHARED_SUBSCRIPTION_STRATEGY"] in ("hash_topic", "sticky")
        assert "CMD" in svc["healthcheck"]["test"] and "status" in svc["healthcheck"]["test"]
    seeds = {
        n: set(services[n]["environment"]["EMQX_CLUSTER__STATIC__SEEDS"].strip("[]").split(","))
        for n in EMQX_NODES
    }
    for name in EMQX_NODES:
        assert seeds[name] == set(names.values()), f"{name}: seeds {seeds[name]}"
    cookies = {services[n]["environment"]["EMQX_NODE__COOKIE"] for n in EMQX_NODES}
    assert len(cookies) == 1, "cluster nodes need one Erlang cookie"
    strategies = {
        services[n]["environment"]["EMQX_MQTT__SHARED_SUBSCRIPTION_STRATEGY"] for n in EMQX_NODES
    }
    assert len(strategies) == 1, "the cluster's nodes must pick members the same way"
    replicas = {n: svc for n, svc in _node_services(compose).items() if _broker_of(svc) == "emqx"}
    hosts = {}
    for name, svc in replicas.items():
        assert svc["profiles"] == ["emqx"], name
        host = svc["environment"]["RULEDRIVE_MQTT_URL"].partition("://")[2].partition(":")[0]
        assert svc["depends_on"][host]["condition"] == "service_healthy", name
        hosts[name] = host
    assert sorted(hosts.values()) == sorted(EMQX_NODES), f"one replica per EMQX node: {hosts}"
    replay = services["replay-emqx"]
    assert replay["profiles"] == ["emqx"] and set(replay["depends_on"]) == set(EMQX_NODES)


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
        for shell in ({}, {SHARE: "ruledrive-nodes"}):  # without and with the shell's group
            for key, value in env.items():
                value = _interpolate(value, shell)
                if key == "RULEDRIVE_TLS_CA":  # a container path: check the file mounted there
                    value = str(_container_file(svc, value, generated))
                monkeypatch.setenv(key, value)
            load_settings()  # raises ConfigError on any invalid value
            for key in env:
                monkeypatch.delenv(key)


def test_gpu_reservation(compose: dict) -> None:
    for name in ("node", "node-2"):
        devices = compose["services"][name]["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"], name
    for name in ("node-cpu", "node-emqx-1", "node-emqx-2"):
        assert "deploy" not in compose["services"][name], name
        assert compose["services"][name]["environment"]["RULEDRIVE_PROVIDERS"] == "cpu", name
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


@pytest.mark.parametrize("service", REPLAY_SERVICES)
def test_replay_command_parses_with_our_cli(compose: dict, service: str) -> None:
    from ruledrive.cli import build_parser

    cmd = compose["services"][service]["command"]
    assert cmd[0] == "ruledrive"
    args = build_parser().parse_args(cmd[1:])
    assert args.command == "replay"
    for path in args.recordings:
        mounted = {
            v.split(":")[1]: v.split(":")[0] for v in compose["services"][service]["volumes"]
        }
        container_dir = str(Path(path).parent)
        assert container_dir in mounted, f"{path} is not on a mounted volume"
        host = ROOT / mounted[container_dir] / Path(path).name
        if not host.exists():
            pytest.skip(f"{host} not generated yet")
