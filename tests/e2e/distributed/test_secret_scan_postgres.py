"""The PostgreSQL part of the secret scan finds what is planted in it: in a text, JSON or bytea column of any
table, and inside a trigger row's kwargs, both Fernet-encrypted and stored as plain JSON (as Airflow 3.3's
execution API stores them)."""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet

from tests.e2e.distributed.cluster import fernet_key
from tests.e2e.secret_scan import decrypted_triggers, find_leaks, postgres_text_columns

SECRETS = {"hpgames secret": "hpgames-sec-SECRETSCAN-0a1b2c3d4e5f"}
SECRET = SECRETS["hpgames secret"]


@pytest.mark.e2e
def test_postgres_scan_finds_a_secret_in_any_text_column_and_in_trigger_kwargs(postgres):
    key = fernet_key()
    encrypted = Fernet(key.encode()).encrypt(json.dumps({"password": SECRET}).encode()).decode()
    with postgres.connect() as conn, conn.cursor() as cursor:
        cursor.execute("CREATE TABLE anything (id int, note varchar(200), doc jsonb, blob bytea, n int)")
        cursor.execute(
            "INSERT INTO anything VALUES (1, %s, %s, %s, 7), (2, 'clean', '{}', NULL, 8)",
            (f"x {SECRET} y", json.dumps({"k": [SECRET]}), SECRET.encode()),
        )
        cursor.execute("CREATE TABLE trigger (id int, classpath text, kwargs text)")
        cursor.execute(
            "INSERT INTO trigger VALUES (1, 'a.Trigger', %s), (2, 'b.Trigger', %s), (3, 'c.Trigger', %s)",
            (encrypted, json.dumps({"conn_id": "hpgames_default", "token": SECRET}), json.dumps({"conn_id": "x"})),
        )
        columns = postgres_text_columns(cursor)
        triggers = decrypted_triggers(cursor, key)

    leaks = find_leaks(SECRETS, {**columns, **triggers})

    assert sorted(leak.split(":")[0] for leak in leaks) == [
        "hpgames secret in anything.blob",
        "hpgames secret in anything.doc",
        "hpgames secret in anything.note",
        "hpgames secret in trigger 1 a.Trigger (encrypted)",
        "hpgames secret in trigger 2 b.Trigger (plain)",
        "hpgames secret in trigger.kwargs",  # the plain row, seen by the raw scan too
    ]
    assert "anything.n" not in columns  # numbers are not scanned
    assert triggers["trigger 3 c.Trigger (plain)"] == '{"conn_id": "x"}'
