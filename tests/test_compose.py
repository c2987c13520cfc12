"""docker-compose.yml and the Dockerfile, checked without a Docker engine: schema, commands, settings."""

import json
import os
import re
import shlex
import subprocess
import sys
from importlib import util

import jsonschema
import pytest
import yaml

from tests.conftest import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
APP_SERVICES = ("web", "worker", "beat", "flower")


def command(service: str) -> list[str]:
    value = SERVICES[service]["command"]
    return shlex.split(value) if isinstance(value, str) else value


def env_example_names() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", text, re.MULTILINE))


def test_valid_against_the_compose_specification():
    # Vendored in the repository (Apache-2.0, licence beside it), so the test needs nothing outside it.
    schema = json.loads((ROOT / "docs" / "compose-spec" / "compose-spec.json").read_text())
    validator = jsonschema.Draft7Validator(schema)  # its `$schema`, spelled without the trailing `#`
    validator.validate(COMPOSE)
    # The schema has teeth: a misspelt key is refused.
    misspelt = {**COMPOSE, "services": {**SERVICES, "web": {**SERVICES["web"], "comand": ["x"]}}}
    assert not validator.is_valid(misspelt)
    assert (ROOT / "docs" / "compose-spec" / "LICENSE").read_text().lstrip().startswith("Apache License")


def test_redis_keeps_its_data_and_reports_its_health():
    redis = SERVICES["redis"]
    assert redis["image"].startswith("redis:")
    args = command("redis")
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--appendfsync") + 1] == "everysec"
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    volume = redis["volumes"][0].split(":")
    assert volume[1] == "/data" and volume[0] in COMPOSE["volumes"]


@pytest.mark.parametrize("service", APP_SERVICES)
def test_every_process_waits_for_redis_and_reads_env(service):
    definition = SERVICES[service]
    assert definition["depends_on"]["redis"]["condition"] == "service_healthy"
    assert definition["env_file"] == ".env"
    assert definition["environment"]["REDIS_URL"].startswith("redis://redis:6379/")
    assert definition["build"] == "."


def test_commands_name_what_exists():
    assert command("web")[:2] == ["gunicorn", "web:app"]
    assert command("worker")[:4] == ["celery", "-A", "tasks", "worker"]
    assert command("beat")[:4] == ["celery", "-A", "tasks", "beat"]
    flower = command("flower")
    assert flower[:4] == ["celery", "-A", "tasks", "flower"]
    assert "--persistent=True" in flower
    db = next(arg for arg in flower if arg.startswith("--db=")).removeprefix("--db=")
    mounted = [volume.split(":")[1] for volume in SERVICES["flower"]["volumes"]]
    assert os.path.dirname(db) in mounted
    assert "FLOWER_BASIC_AUTH" in SERVICES["flower"]["environment"]
    for module in ("web", "tasks", "celeryconfig"):
        assert util.find_spec(module) is not None, module
    assert (ROOT / "gunicorn.conf.py").exists()


def test_the_celery_app_and_its_schedule():
    import tasks

    assert tasks.app.main == "verification"
    for entry in tasks.app.conf.beat_schedule.values():
        assert entry["task"] in tasks.app.tasks, entry["task"]


def test_gunicorn_loads_its_config_and_the_app():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VERIFICATION_", "PROMETHEUS_"))}
    env.update(CODE_HASH_SECRET="x", API_KEYS="k", SMS_BACKEND="console")
    result = subprocess.run([sys.executable, "-m", "gunicorn", "--check-config", "web:app"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_worker_metrics_port_is_exposed():
    worker = SERVICES["worker"]
    assert worker["environment"]["WORKER_METRICS_PORT"] in worker["expose"]


@pytest.mark.parametrize("service", ["web", "worker"])
def test_multiprocess_metrics_have_a_fresh_directory_of_their_own(service):
    definition = SERVICES[service]
    assert definition["environment"]["PROMETHEUS_MULTIPROC_DIR"] in definition["tmpfs"]


def test_compose_and_env_example_name_the_same_settings():
    names = env_example_names()
    text = (ROOT / "docker-compose.yml").read_text()
    interpolated = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))
    assert interpolated <= names
    for service in APP_SERVICES:
        assert set(SERVICES[service]["environment"]) <= names, service


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comment lines dropped, then continuation lines joined, as Docker does."""
    lines = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if not line.strip().startswith("#")]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    return [tuple(line.strip().split(None, 1)) for line in text.splitlines() if line.strip()]


def test_the_image_installs_the_project_from_pyproject_as_ci_does():
    instructions = dockerfile()
    copies = [args.split() for kind, args in instructions if kind == "COPY"]
    copied = [source for args in copies for source in args[:-1]]
    assert "pyproject.toml" in copied
    for source in copied:
        assert (ROOT / source).exists(), source
    # Every module the project installs is in the image.
    for module in ("tasks.py", "web.py", "celeryconfig.py", "verification"):
        assert module in copied
    runs = " && ".join(args for kind, args in instructions if kind == "RUN")
    installs = re.findall(r"pip install ([^&]*)", runs)
    assert any(re.fullmatch(r"(-e )?\.(\[[a-z,]+\])?", args.strip()) for args in installs), installs
    # CI (./dev, called by .ci/run) installs the same way: pip, the project directory, pyproject.toml.
    assert re.search(r"pip install .*-e \"?\.", (ROOT / "dev").read_text())
    assert "requirements" not in runs


def test_the_image_runs_as_a_user_not_root():
    users = [args for kind, args in dockerfile() if kind == "USER"]
    assert users and users[-1] not in {"root", "0"}


def test_the_image_gets_every_data_file_of_the_package():
    """`pip install .` (not editable) copies only what package-data names: templates, static, Lua."""
    import fnmatch
    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["verification"]
    package = ROOT / "verification"
    for path in package.rglob("*"):
        if path.is_file() and path.suffix not in {".py", ".pyc"} and "__pycache__" not in path.parts:
            relative = path.relative_to(package).as_posix()
            assert any(fnmatch.fnmatchcase(relative, pattern) and relative.count("/") == pattern.count("/")
                       for pattern in patterns), relative


def test_every_setting_is_in_env_example_and_the_readme():
    """What compose passes through `env_file: .env` is what `.env.example` and the README list."""
    import dataclasses

    from verification.config import Settings

    names = env_example_names()
    readme = (ROOT / "README.md").read_text()
    for field in dataclasses.fields(Settings):
        assert field.name in names, f"{field.name} missing from .env.example"
        assert f"`{field.name}`" in readme, f"{field.name} missing from the README"
