"""`python -m pipelines.airflow.admin_user --username NAME < password`: an Airflow Admin, that password.

The password comes on stdin, never as an argument: `airflow users create --password=...` shows it to
everyone who can run `ps` on the machine, for as long as the command runs. Run with the environment
of the Airflow it is for (AIRFLOW_HOME and the database), after `airflow db migrate`.

The user is created, or, when it exists, given the password and the Admin role only. Not through
`airflow users reset-password`: it fails in Airflow 2.11.2 ("The sqlalchemy extension was not
registered", apache/airflow#63830) because it looks the user up and resets the password under two
different Flask applications; here both happen under one.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

ROLE = "Admin"


def ensure_admin(username: str, password: str) -> str:
    """Creates `username` as an Admin with `password`, or resets an existing one; says which."""
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder
    from airflow.providers_manager import ProvidersManager

    ProvidersManager().initialize_providers_configuration()  # what Airflow's own `users` commands do
    with get_application_builder() as appbuilder:
        security = appbuilder.sm
        role = security.find_role(ROLE)
        if role is None:
            raise SystemExit(f"Airflow has no '{ROLE}' role yet: run `airflow db migrate` first")
        user = security.find_user(username=username)
        if user is None:
            email = f"{username}@localhost"
            if not security.add_user(username, "Blueprint", "Admin", email, role, password):
                raise SystemExit(f"Airflow refused to create the user '{username}'")
            return "created"
        user.roles = [role]
        security.update_user(user)
        if not security.reset_password(user.id, password):
            raise SystemExit(f"Airflow refused the new password of '{username}'")
        return "password reset"


def read_password(stream: TextIO) -> str:
    """The password on `stream`, without the newline that `echo` or a here-string adds."""
    password = stream.read().removesuffix("\n").removesuffix("\r")
    if not password:
        raise SystemExit("no password on stdin: pipe the admin's password into this command")
    return password


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.airflow.admin_user", description=__doc__)
    parser.add_argument("--username", required=True)
    args = parser.parse_args(argv)
    done = ensure_admin(args.username, read_password(sys.stdin))
    print(f"Airflow user '{args.username}' ({ROLE}): {done}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
