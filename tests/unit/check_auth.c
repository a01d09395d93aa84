/*
 * check_auth: protocol/auth.c — reading the -Y file as memcached 1.6.18 reads it (first 8
 * users, ':' required, password ends at '\r' or '\n', a one-line file without a newline loses
 * its last byte), a failed reload keeping the old users, and the compare.
 * (The login exchange itself is compared with memcached in tests/integration/test_auth.py.)
 */
#include "protocol/auth.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "unit.h"

static char path[64];
static char err[512];

static void setup(void)
{
    snprintf(path, sizeof path, "/tmp/check_auth.XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
}

static void teardown(void)
{
    auth_teardown();
    unlink(path);
}

static void file(const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static bool ok(const char *user, const char *pass)
{
    return auth_check(user, strlen(user), pass, strlen(pass));
}

START_TEST(test_load_and_check)
{
    file("alice:one\r\nbob:two\nempty:\n");
    ck_assert_int_eq(auth_load(path, err, sizeof err), 0);
    ck_assert(auth_enabled());
    ck_assert(ok("alice", "one"));
    ck_assert(ok("bob", "two"));
    ck_assert(!ok("bob", "one"));
    ck_assert(!ok("alice", "one\r"));
    ck_assert(!ok("bo", "two"));
    ck_assert(!ok("empty", "")); /* an empty password never logs in */
}
END_TEST

START_TEST(test_first_eight)
{
    char text[512] = "";
    for (int i = 1; i <= 9; i++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "u%d:p%d\n", i, i);
    strcat(text, "no colon after the eighth is never read\n");
    file(text);
    ck_assert_int_eq(auth_load(path, err, sizeof err), 0);
    ck_assert(ok("u8", "p8"));
    ck_assert(!ok("u9", "p9"));
}
END_TEST

START_TEST(test_one_line_without_newline)
{
    file("solo:secret");
    ck_assert_int_eq(auth_load(path, err, sizeof err), 0);
    ck_assert(ok("solo", "secre")); /* memcached's fgets limit drops the last byte */
    ck_assert(!ok("solo", "secret"));
}
END_TEST

START_TEST(test_malformed_keeps_old)
{
    file("alice:one\n");
    ck_assert_int_eq(auth_load(path, err, sizeof err), 0);
    file("alice:one\n\nbob:two\n"); /* an empty line is malformed, as in memcached */
    ck_assert_int_eq(auth_load(path, err, sizeof err), -1);
    ck_assert(strstr(err, "has a malformed entry. Should be 'user:password'") != NULL);
    ck_assert(ok("alice", "one"));
    ck_assert(!ok("bob", "two"));
    unlink(path);
    ck_assert_int_eq(auth_load(path, err, sizeof err), -1);
    ck_assert(strncmp(err, "Could not open authfile [", 25) == 0);
    ck_assert(ok("alice", "one"));
}
END_TEST

int main(void)
{
    const struct unit_case cases[] = {
        {"load_and_check", test_load_and_check},
        {"first_eight", test_first_eight},
        {"one_line_without_newline", test_one_line_without_newline},
        {"malformed_keeps_old", test_malformed_keeps_old},
    };
    Suite *s = suite_create("auth");
    unit_add_cases(s, cases, sizeof cases / sizeof *cases, setup, teardown);
    return unit_run(s, "check_auth");
}
