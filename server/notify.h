/*
 * Private to server/: no file outside server/ includes it.
 * notify: systemd's readiness protocol. When $NOTIFY_SOCKET names an AF_UNIX datagram socket
 * (a path, or "@name" for the abstract namespace), send it "READY=1" once listening and
 * "STOPPING=1" when shutting down. Without $NOTIFY_SOCKET every call is a no-op.
 */
#pragma once

/* Sends one state string (e.g. "READY=1\nMAINPID=123"). Returns 0, 1 when not under systemd,
 * or -1 on error (logged by the caller if it cares). */
int notify_send(const char *state);
