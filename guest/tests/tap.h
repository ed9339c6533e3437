/*
 * tap.h: the few helpers pmemlab's guest test programs use to report TAP version 13.
 *
 * Every check is one test point ("ok 3 - description" or "not ok 3 - description"),
 * explanations are "# " diagnostic lines, and the plan ("1..N") is printed at the end
 * by tap_done(), unless tap_plan() announced it first. stdout is line buffered so that
 * pmemlab, which streams the output while the program runs, sees each line as soon as
 * it is printed (and so that nothing is lost when the VM loses power mid-run).
 *
 * Header only: each program is a single .c file plus this header.
 */
#ifndef PMEMLAB_TAP_H
#define PMEMLAB_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int tap_count;   /* test points printed so far */
static int tap_failed;  /* of which "not ok" */
static int tap_planned; /* the plan was printed up front */

static inline void tap_start(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("TAP version 13\n");
}

static inline void tap_plan(int n)
{
	printf("1..%d\n", n);
	tap_planned = 1;
}

/* A test point; returns pass so callers can branch on it. */
static inline int tap_ok(int pass, const char *fmt, ...)
{
	va_list ap;
	tap_count++;
	if (!pass)
		tap_failed++;
	printf("%s %d - ", pass ? "ok" : "not ok", tap_count);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	return pass;
}

/* A test point that could not run here: counts as passed, says why. */
static inline void tap_skip(const char *why, const char *fmt, ...)
{
	va_list ap;
	tap_count++;
	printf("ok %d - ", tap_count);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(" # SKIP %s\n", why);
}

/* A diagnostic line ("# ..."): the reason behind a failure, or a fact worth seeing. */
static inline void tap_diag(const char *fmt, ...)
{
	va_list ap;
	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

/* Nothing sensible can follow (bad usage, no memory): stop the whole stream. */
static inline void tap_bail(const char *fmt, ...)
{
	va_list ap;
	printf("Bail out! ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	exit(2);
}

/* Prints the plan (unless printed up front) and returns the exit status: 0 when all passed. */
static inline int tap_done(void)
{
	if (!tap_planned)
		printf("1..%d\n", tap_count);
	return tap_failed ? 1 : 0;
}

#endif
