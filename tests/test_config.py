"""Settings from the environment: defaults, coercion and refusals."""

import pytest

from verification.config import ConfigError, Settings


def test_defaults():
    s = Settings.from_env({}, CODE_HASH_SECRET="x", API_KEYS="k", SMS_BACKEND="console")
    assert (s.VERIFICATION_WINDOW_SECONDS, s.VERIFICATION_MAX_ATTEMPTS, s.VERIFICATION_CODE_LENGTH) == (90, 4, 4)
    assert s.VERIFICATION_RETENTION_SECONDS == 86400
    assert s.sms_backend == "console"


def test_the_console_sender_is_never_chosen_silently_outside_development():
    with pytest.raises(ConfigError, match="Twilio credentials"):
        Settings.from_env({"CODE_HASH_SECRET": "x"})
    assert Settings.from_env({"CODE_HASH_SECRET": "x", "DEVELOPMENT_MODE": "1"}).sms_backend == "console"
    with pytest.raises(ConfigError):
        Settings.from_env({"CODE_HASH_SECRET": "x", "SMS_BACKEND": "carrier-pigeon"})


def test_empty_values_keep_the_defaults():
    s = Settings.from_env({"CODE_HASH_SECRET": "x", "SMS_BACKEND": "console", "TWILIO_API_BASE_URL": "",
                           "VERIFICATION_WINDOW_SECONDS": "", "REDIS_URL": ""})
    assert s.TWILIO_API_BASE_URL == "https://api.twilio.com"
    assert s.VERIFICATION_WINDOW_SECONDS == 90
    assert s.REDIS_URL == "redis://localhost:6379/0"


def test_environment_is_read_and_coerced():
    s = Settings.from_env({"VERIFICATION_WINDOW_SECONDS": "5", "API_KEYS": "a, b,", "CODE_HASH_SECRET": "x",
                           "TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t"})
    assert s.VERIFICATION_WINDOW_SECONDS == 5
    assert s.API_KEYS == ("a", "b")
    assert s.sms_backend == "twilio"


@pytest.mark.parametrize(("name", "value"), [
    ("VERIFICATION_CODE_LENGTH", "3"),
    ("VERIFICATION_CODE_LENGTH", "11"),
    ("VERIFICATION_WINDOW_SECONDS", "0"),
    ("VERIFICATION_MAX_ATTEMPTS", "0"),
    ("VERIFICATION_WINDOW_SECONDS", "ninety"),
])
def test_bad_values_are_refused(name, value):
    with pytest.raises(ConfigError):
        Settings.from_env({name: value, "CODE_HASH_SECRET": "x", "API_KEYS": "k", "SMS_BACKEND": "console"})


def test_code_hash_secret_is_required_outside_development():
    with pytest.raises(ConfigError, match="CODE_HASH_SECRET"):
        Settings.from_env({"API_KEYS": "k", "SMS_BACKEND": "console"})
    assert Settings.from_env({"DEVELOPMENT_MODE": "1"}).CODE_HASH_SECRET
