#!/bin/sh
# The registry stand-in's entry point, doing what the official registry:2 image's does:
# a configuration file (*.yml, *.yaml) means `registry serve FILE`; registry's own subcommands
# and options go to registry; anything else runs as it is (`sh`, `registry --version`).
set -e

case "$1" in
	*.yaml|*.yml) set -- registry serve "$@" ;;
	serve|garbage-collect|help|-*) set -- registry "$@" ;;
esac

exec "$@"
