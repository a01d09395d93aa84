/*
 * unit: what every tests/unit/check_X.c does the same way — one TCase per test from a table,
 * and main(): fork mode, run, and the closing "check_X: N passed, M failed" line that
 * tests/run.sh shows. A header of static inline functions: the Makefile links each check_X.c
 * alone with the library objects, so a shared .c would not be linked.
 */
#pragma once

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

struct unit_case {
    const char *name;
    const TTest *t;
};

/* Adds each case as its own TCase (named for the API it tests) with the per-test fixture. */
static inline void unit_add_cases(Suite *s, const struct unit_case *cases, size_t n,
                                  SFun each_setup, SFun each_teardown)
{
    for (size_t i = 0; i < n; i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_add_checked_fixture(tc, each_setup, each_teardown);
        tcase_add_test(tc, cases[i].t);
        suite_add_tcase(s, tc);
    }
}

/* Runs the suite in fork mode; returns main()'s exit status. */
static inline int unit_run(Suite *suite, const char *name)
{
    SRunner *sr = srunner_create(suite);
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int run_n = srunner_ntests_run(sr), failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    printf("%s: %d passed, %d failed\n", name, run_n - failed, failed);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
