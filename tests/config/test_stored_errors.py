"""Database errors carry no statement parameters; every stored error column is redacted, whoever writes it."""
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from config.database import engine_for, session_scope
from config.models import JobFailure
from config.queue import record_failure
from config.types import ErrorText, utcnow

SECRET_PAYLOAD = "<xml><Remark>13812345678 住在静安</Remark></xml>"
TOKEN = "AccessToken0123456789abcdefXYZ"


def test_an_integrity_error_names_the_statement_but_not_its_parameters(settings):
    from webhooks.models import InboxEvent

    # given a row, when a second one with the same content key (and a payload with personal data) is inserted
    def row():
        return InboxEvent(source="wecom", content_key="wecom:msg:1", payload=SECRET_PAYLOAD, data={"secret": TOKEN},
                          received_at=utcnow(), due_at=utcnow())

    with session_scope() as s:
        s.add(row())
    with pytest.raises(IntegrityError) as exc:
        with session_scope() as s:
            s.add(row())
    # then the error says which statement failed, without the values bound to it
    message = str(exc.value)
    assert "INSERT INTO webhook_inbox" in message and "parameters hidden" in message
    assert "13812345678" not in message and TOKEN not in message


def test_a_data_error_names_no_parameter_values(pg_url):
    # given PostgreSQL, when a value does not fit its column
    engine = engine_for(pg_url)
    with pytest.raises(DBAPIError) as exc, engine.begin() as conn:
        conn.execute(text("INSERT INTO job_failures (func, args, queue, error, attempts, failed_at) "
                          "VALUES (:f, '[]', :q, 'e', 1, now())"), {"f": "x", "q": TOKEN * 3})
    # then the message names the problem, not the value
    assert "value too long" in str(exc.value) and TOKEN not in str(exc.value)


def test_every_error_column_of_the_schema_is_redacted_text():
    from siyu.models import metadata

    # given every table Siyu has, then each column that stores an error redacts what is written to it
    columns = [(t.name, c.name) for t in metadata.sorted_tables for c in t.columns
               if c.name == "error" or c.name.endswith("_error")]
    assert len(columns) >= 4
    assert not [tc for tc in columns if not isinstance(metadata.tables[tc[0]].columns[tc[1]].type, ErrorText)]


def test_a_job_that_failed_for_good_is_recorded_without_secrets_or_phones(settings):
    # given a traceback that carries a URL with a token and a phone number
    error = (f"Traceback (most recent call last):\n  ...\nConnectionError: /cgi-bin/user/get?access_token={TOKEN}"
             " for +8613800138000")
    # when the final failure is recorded
    record_failure("bot.jobs.sync_wecom_job", [], "low", error, 4)
    # then job_failures keeps the traceback, redacted
    with session_scope() as s:
        [stored] = s.scalars(select(JobFailure.error))
    assert "access_token=***" in stored and "+86138****8000" in stored
    assert TOKEN not in stored and "13800138000" not in stored
