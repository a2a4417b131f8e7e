"""The Functions layer's settings raise like the core's: a bad value names the setting and the
range it accepts, and never falls back to the default silently."""

from __future__ import annotations

import pytest

from jobs_api.runtime import ApiSettings
from jobs_core.errors import SettingsError
from jobs_core.storage_settings import ConfigurationError


@pytest.mark.parametrize(("name", "value"), [
    ("JOBS_MAX_WAIT_SECONDS", "abc"), ("JOBS_MAX_WAIT_SECONDS", "231"),
    ("JOBS_MAX_BATCH", "0"), ("JOBS_MAX_BODY_BYTES", "nan"),
    ("JOBS_MIN_SLEEP_SECONDS", "-1"), ("JOBS_CYCLE_DEADLINE_SECONDS", "inf"),
])
def test_a_bad_number_names_the_setting_and_its_range(monkeypatch: pytest.MonkeyPatch,
                                                      name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=f"{name} must be a number in .*, got '{value}'"):
        ApiSettings.from_env()


def test_good_numbers_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBS_MAX_WAIT_SECONDS", "12.5")
    monkeypatch.delenv("JOBS_MAX_BATCH", raising=False)
    settings = ApiSettings.from_env()
    assert settings.max_wait_seconds == 12.5 and settings.max_batch == 1000


def test_one_settings_error() -> None:
    assert ConfigurationError is SettingsError
