/*
 * auth: memcached's ASCII authentication (-Y FILE). Until a connection logs in, every command
 * line gets "CLIENT_ERROR unauthenticated"; the login is a `set <key> <flags> <exptime> <len>`
 * whose data is "user password" (answered STORED, nothing stored).
 *
 * The file is read like memcached 1.6.18 reads it: `user:password` lines, only the first 8,
 * each line at most 255 bytes, the password ending at '\r' or '\n'; a line without ':'
 * (an empty line too) rejects the whole file. A one-line file without a final newline loses
 * its last byte, as memcached's does. Passwords are compared in constant time.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define AUTH_MAX_ENTRIES 8

/* Loads (or on SIGHUP reloads) path. On failure the previous users stay in force, -1 is
 * returned and err holds memcached's message ("Could not open authfile [...]..."). */
int auth_load(const char *path, char *err, size_t errlen);
/* -Y was given and loaded. */
bool auth_enabled(void);
/* Any thread. */
bool auth_check(const char *user, size_t ulen, const char *pass, size_t plen);
void auth_teardown(void);
