#!/bin/sh
# The redis stand-in's entry point, doing what the official image's does:
# - options alone (`--appendonly yes`) or a *.conf file mean: redis-server with them;
# - started as root, redis-server gets the working directory (/data) handed to user redis and
#   runs as that user (setpriv from util-linux stands in for Alpine's su-exec);
# - protected mode is off, as in the official build (it patches the default in the source;
#   Debian's keeps it on, so it is said on the command line unless the command says otherwise).
set -e

if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
	set -- redis-server "$@"
fi

if [ "$1" = 'redis-server' ] && [ "$(id -u)" = '0' ]; then
	find . \! -user redis -exec chown redis '{}' +
	exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi

if [ "$1" = 'redis-server' ]; then
	case " $* " in
		*" --protected-mode "*) ;;
		*) set -- "$@" --protected-mode no ;;
	esac
fi

# files the server writes are its own (the official image sets the same umask)
um="$(umask)"
if [ "$um" = '0022' ]; then
	umask 0077
fi

exec "$@"
