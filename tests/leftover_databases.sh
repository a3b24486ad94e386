#!/bin/sh
# Lists the PostgreSQL test databases (it_*) left on the server that TEST_DATABASE_URL
# names, and fails when there is any. Run it after `cargo test --test it`, while no other
# run of the suite is going on: every test drops its databases, even when it panics.
set -eu
url="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
left=$(psql "$url" -Atc "select datname from pg_database where datname like 'it\_%' order by 1")
if [ -n "$left" ]; then
    echo "test databases left behind:" >&2
    echo "$left" >&2
    exit 1
fi
echo "no test database left behind"
