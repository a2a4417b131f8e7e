"""The Functions layer's settings raise like the core's: a bad value names the setting and the
range it accepts, and never falls back to the default silently."""

from __future__ import annotations

import pytest

from jobs_api.runtime import ApiSettings, timer_schedule
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


@pytest.mark.parametrize("value", ["0 */5 * * * *", "0 17 3 * * *", "*/2 * * * * *",
                                   "0 0 9-17 * * MON-FRI", "0 30 2 1,15 JAN,JUL *",
                                   "5-10/2 0 0 * * 0"])
def test_a_timer_schedule_the_host_accepts_is_taken(monkeypatch: pytest.MonkeyPatch,
                                                    value: str) -> None:
    from devhost import ncrontab  # the Functions host's grammar, as devhost implements it

    monkeypatch.setenv("JOBS_PURGE_SCHEDULE", value)
    assert timer_schedule("JOBS_PURGE_SCHEDULE", "0 17 3 * * *") == value
    ncrontab.parse(value)


@pytest.mark.parametrize("value", [
    "0 */5 * * *", "every 5 minutes", "0 17 3 * * * *", "0 17 3 * * %",  # not six fields
    "0 99 * * * *", "0 0 25 * * *", "*/0 * * * * *", "60 * * * * *",  # out of range
    "0 0 0 * FOO *", "0 0 0 L * *",  # not a name, not NCRONTAB
])
def test_a_bad_timer_schedule_names_the_setting(monkeypatch: pytest.MonkeyPatch,
                                                value: str) -> None:
    monkeypatch.setenv("JOBS_KEEPER_SCHEDULE", value)
    with pytest.raises(SettingsError, match="JOBS_KEEPER_SCHEDULE must be an NCRONTAB schedule "
                                            "of six fields"):
        timer_schedule("JOBS_KEEPER_SCHEDULE", "0 */5 * * * *")


@pytest.mark.parametrize("value", ["0 99 * * * *", "0 0 25 * * *", "*/0 * * * * *",
                                   "60 * * * * *", "0 0 0 * FOO *"])
def test_what_is_refused_the_hosts_grammar_refuses_too(value: str) -> None:
    from devhost import ncrontab

    with pytest.raises(ValueError):
        ncrontab.parse(value)


@pytest.mark.parametrize("value", ["00:05:00", "1.00:00:00", "01:00"])
def test_a_timespan_schedule_is_refused_with_the_reason(monkeypatch: pytest.MonkeyPatch,
                                                        value: str) -> None:
    monkeypatch.setenv("JOBS_PURGE_SCHEDULE", value)
    with pytest.raises(SettingsError, match=r"JOBS_PURGE_SCHEDULE must be an NCRONTAB .*TimeSpan"):
        timer_schedule("JOBS_PURGE_SCHEDULE", "0 17 3 * * *")


def test_an_unset_timer_schedule_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBS_KEEPER_SCHEDULE", "  ")
    assert timer_schedule("JOBS_KEEPER_SCHEDULE", "0 */5 * * * *") == "0 */5 * * * *"
