"""Where ML Metadata lives: SQLite by default; MySQL only with an account given, never a default one."""

from __future__ import annotations

import pytest

from pipelines.paths import (
    MYSQL_PASSWORD_VARIABLE,
    MYSQL_USER_VARIABLE,
    MYSQL_VARIABLE,
    MetadataConfigError,
    RunPaths,
    mysql_settings,
)


@pytest.fixture
def environment(monkeypatch):
    for name in (MYSQL_VARIABLE, MYSQL_USER_VARIABLE, MYSQL_PASSWORD_VARIABLE):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_without_mysql_metadata_is_the_sqlite_file(environment, tmp_path):
    assert mysql_settings() is None
    paths = RunPaths.for_spec("taxi", tmp_path)
    assert paths.metadata_location() == str(tmp_path / "metadata" / "taxi.sqlite")


@pytest.mark.parametrize(
    "given, missing",
    [
        ({}, [MYSQL_USER_VARIABLE, MYSQL_PASSWORD_VARIABLE]),
        ({MYSQL_USER_VARIABLE: "blueprint"}, [MYSQL_PASSWORD_VARIABLE]),
        ({MYSQL_PASSWORD_VARIABLE: "secret"}, [MYSQL_USER_VARIABLE]),
        ({MYSQL_USER_VARIABLE: "", MYSQL_PASSWORD_VARIABLE: ""}, [MYSQL_USER_VARIABLE]),
    ],
)
def test_mysql_needs_its_account_given(environment, given, missing):
    """Before, MLMD on MySQL fell back to `root` with an empty password."""
    environment.setenv(MYSQL_VARIABLE, "127.0.0.1:3306/mlmd")
    for name, value in given.items():
        environment.setenv(name, value)
    with pytest.raises(MetadataConfigError) as refused:
        mysql_settings()
    message = str(refused.value)
    assert all(name in message for name in missing), message
    assert MYSQL_USER_VARIABLE in message and MYSQL_PASSWORD_VARIABLE in message, "says what to set"


def test_an_empty_password_set_explicitly_is_accepted(environment, tmp_path):
    environment.setenv(MYSQL_VARIABLE, "db.internal/mlmd")
    environment.setenv(MYSQL_USER_VARIABLE, "blueprint")
    environment.setenv(MYSQL_PASSWORD_VARIABLE, "")
    settings = mysql_settings()
    assert (settings.host, settings.port, settings.database) == ("db.internal", 3306, "mlmd")
    assert (settings.user, settings.password) == ("blueprint", "")
    assert RunPaths.for_spec("taxi", tmp_path).metadata_location() == "mysql://db.internal:3306/mlmd"


def test_the_password_stays_out_of_the_settings_repr(environment):
    environment.setenv(MYSQL_VARIABLE, "127.0.0.1:3306/mlmd")
    environment.setenv(MYSQL_USER_VARIABLE, "blueprint")
    environment.setenv(MYSQL_PASSWORD_VARIABLE, "s3cret@host")
    assert "s3cret" not in repr(mysql_settings())


def test_a_malformed_mysql_address_is_named(environment):
    environment.setenv(MYSQL_VARIABLE, "127.0.0.1:three/mlmd")
    with pytest.raises(MetadataConfigError, match=f"{MYSQL_VARIABLE}='127.0.0.1:three/mlmd'"):
        mysql_settings()
