#!/bin/sh
# Migrate the database to the newest schema, then run the given research-bot command (default: bot).
set -e
research-bot migrate
exec research-bot "$@"
