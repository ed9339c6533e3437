/*
 * pmemlab-pmemobj: PMDK's pool library (libpmemobj) on a pmem-backed filesystem.
 *
 *   pmemlab-pmemobj suite DIR
 *       Creates DIR/pmemlab-suite.pool and checks: a committed transaction keeps its change;
 *       an aborted one rolls back both its stores and its allocation; transactional
 *       allocations and frees; the pool reopens (and refuses another layout name) with its
 *       data intact; pmemobj_check finds it consistent. The pool is left in place so that
 *       pmempool can look at it too.
 *
 *   pmemlab-pmemobj write POOL N [--hold]
 *       Creates POOL and commits N records, one transaction each. With --hold it then opens
 *       one more transaction (a change to record 0, a new record N, a new count), prints
 *       "# holding" and waits inside it: the power is cut there (pmemlab: QMP quit).
 *
 *   pmemlab-pmemobj verify POOL N
 *       After the power cut: opening the pool runs libpmemobj's recovery, which must roll the
 *       interrupted transaction back. Checks that exactly the N committed records are there,
 *       intact, that record 0 has its committed value, and that pmemobj_check agrees.
 *
 * Output is TAP; the exit status is 0 when everything held.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <libpmemobj.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"

#define LAYOUT "pmemlab"
#define POOL_SIZE (32u << 20)
#define MAGIC 0x706d656d6c616231ull /* "pmemlab1" */
#define SUITE_RECORDS 64

POBJ_LAYOUT_BEGIN(pmemlab);
POBJ_LAYOUT_ROOT(pmemlab, struct root);
POBJ_LAYOUT_TOID(pmemlab, struct record);
POBJ_LAYOUT_END(pmemlab);

struct record {
	uint64_t id;
	uint64_t value;
	TOID(struct record) next;
};

struct root {
	uint64_t magic;
	uint64_t count; /* records in the list */
	uint64_t value; /* the word the commit/abort checks change */
	TOID(struct record) head;
};

/* The value record ID must hold: anything else is corruption. */
static uint64_t expected_value(uint64_t id)
{
	uint64_t x = (id + 1) * 0x9E3779B97F4A7C15ull;
	return x ^ (x >> 29);
}

/* Prepends a new record to the list and counts it: call inside a transaction. */
static void tx_push(TOID(struct root) root, uint64_t id)
{
	TOID(struct record) rec = TX_NEW(struct record);
	D_RW(rec)->id = id;
	D_RW(rec)->value = expected_value(id);
	D_RW(rec)->next = D_RO(root)->head;
	TX_ADD_FIELD(root, head);
	TX_ADD_FIELD(root, count);
	D_RW(root)->head = rec;
	D_RW(root)->count++;
}

/* Walks the list: how many records, and whether each holds the value its id implies. */
static uint64_t walk(TOID(struct root) root, int *intact, uint64_t *max_id)
{
	uint64_t n = 0;
	*intact = 1;
	*max_id = 0;
	for (TOID(struct record) r = D_RO(root)->head; !TOID_IS_NULL(r); r = D_RO(r)->next) {
		if (D_RO(r)->value != expected_value(D_RO(r)->id))
			*intact = 0;
		if (D_RO(r)->id > *max_id)
			*max_id = D_RO(r)->id;
		if (++n > (1u << 24))
			break; /* a cycle: the list is corrupt */
	}
	return n;
}

/* Objects of type struct record in the pool, found by libpmemobj's own iteration. */
static uint64_t count_objects(PMEMobjpool *pop)
{
	TOID(struct record) r;
	uint64_t n = 0;
	POBJ_FOREACH_TYPE(pop, r)
		n++;
	return n;
}

static void fsync_path(const char *path)
{
	int fd = open(path, O_RDONLY);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

/* The pool file's size, allocation and directory entry are metadata: make them durable. */
static void sync_pool_metadata(const char *pool)
{
	char copy[PATH_MAX];
	snprintf(copy, sizeof(copy), "%s", pool);
	fsync_path(pool);
	fsync_path(dirname(copy));
}

/*
 * Each transaction lives in its own function: TX_BEGIN is built on setjmp, and local variables
 * changed after it may be clobbered by the longjmp of an abort.
 */

/* Sets root->value in a transaction that commits; returns whether it did. */
static int tx_commit_value(PMEMobjpool *pop, TOID(struct root) root, uint64_t value)
{
	volatile int committed = 0;
	TX_BEGIN(pop) {
		TX_ADD(root);
		D_RW(root)->magic = MAGIC;
		D_RW(root)->value = value;
	} TX_ONCOMMIT {
		committed = 1;
	} TX_END
	return committed;
}

/* Changes root->value and allocates a record, then aborts; returns whether it aborted. */
static int tx_abort_value(PMEMobjpool *pop, TOID(struct root) root)
{
	volatile int aborted = 0;
	TX_BEGIN(pop) {
		TX_ADD_FIELD(root, value);
		D_RW(root)->value = 7;
		tx_push(root, 999);
		pmemobj_tx_abort(ECANCELED);
	} TX_ONABORT {
		aborted = 1;
	} TX_END
	return aborted;
}

/* Records FIRST..FIRST+N-1 in one transaction, or one transaction each; returns the commits. */
static uint64_t tx_push_records(PMEMobjpool *pop, TOID(struct root) root, uint64_t first, uint64_t n, int one_each)
{
	volatile uint64_t done = 0;
	if (!one_each) {
		TX_BEGIN(pop) {
			for (uint64_t i = 0; i < n; i++)
				tx_push(root, first + i);
		} TX_ONCOMMIT {
			done = n;
		} TX_END
		return done;
	}
	for (uint64_t i = 0; i < n; i++)
		done += tx_push_records(pop, root, first + i, 1, 0);
	return done;
}

/* Unlinks and frees the records with an odd id, in one transaction. */
static void tx_free_odd(PMEMobjpool *pop, TOID(struct root) root)
{
	TX_BEGIN(pop) {
		TOID(struct record) prev = TOID_NULL(struct record);
		TOID(struct record) r = D_RO(root)->head;
		while (!TOID_IS_NULL(r)) {
			TOID(struct record) next = D_RO(r)->next;
			if (D_RO(r)->id % 2) {
				if (TOID_IS_NULL(prev)) {
					TX_ADD_FIELD(root, head);
					D_RW(root)->head = next;
				} else {
					TX_ADD_FIELD(prev, next);
					D_RW(prev)->next = next;
				}
				TX_ADD_FIELD(root, count);
				D_RW(root)->count--;
				TX_FREE(r);
			} else {
				prev = r;
			}
			r = next;
		}
	} TX_END
}

/*
 * The interrupted transaction: changes record 0 (the tail of the list), adds record N and
 * changes root->value, then waits for the power cut without ever committing.
 */
static void tx_hold(PMEMobjpool *pop, TOID(struct root) root, uint64_t n)
{
	TX_BEGIN(pop) {
		TOID(struct record) first = D_RO(root)->head;
		while (!TOID_IS_NULL(D_RO(first)->next))
			first = D_RO(first)->next;
		TX_ADD_FIELD(first, value);
		D_RW(first)->value = ~expected_value(0);
		tx_push(root, n);
		TX_ADD_FIELD(root, value);
		D_RW(root)->value = 0xdead;
		tap_ok(1, "a transaction is open (record 0 changed, record %llu added): waiting for the power cut", (unsigned long long)n);
		tap_diag("holding");
		for (;;)
			pause();
	} TX_END
}

static int suite(const char *dir)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/pmemlab-suite.pool", dir);
	unlink(path);
	PMEMobjpool *pop = pmemobj_create(path, LAYOUT, POOL_SIZE, 0600);
	if (!tap_ok(pop != NULL, "pmemobj_create makes a %u MiB pool in %s", POOL_SIZE >> 20, dir)) {
		tap_diag("pmemobj_create: %s", pmemobj_errormsg());
		return tap_done();
	}
	TOID(struct root) root = POBJ_ROOT(pop, struct root);

	/* A transaction that commits. */
	int committed = tx_commit_value(pop, root, 42);
	tap_ok(committed && D_RO(root)->value == 42, "a committed transaction keeps its change");

	/* A transaction that aborts: its store and its allocation must both disappear. */
	int aborted = tx_abort_value(pop, root);
	int rolled_back = aborted && D_RO(root)->value == 42 && D_RO(root)->count == 0 && TOID_IS_NULL(D_RO(root)->head);
	if (!tap_ok(rolled_back && count_objects(pop) == 0, "an aborted transaction rolls back its stores and its allocation"))
		tap_diag("after abort: value %llu (want 42), count %llu (want 0), %llu objects allocated (want 0)",
			 (unsigned long long)D_RO(root)->value, (unsigned long long)D_RO(root)->count,
			 (unsigned long long)count_objects(pop));

	/* Transactional allocations, then transactional frees of every other record. */
	tx_push_records(pop, root, 0, SUITE_RECORDS, 0);
	int intact;
	uint64_t max_id;
	uint64_t n = walk(root, &intact, &max_id);
	tap_ok(n == SUITE_RECORDS && intact && count_objects(pop) == SUITE_RECORDS, "%d records allocated in one transaction are linked and counted", SUITE_RECORDS);

	tx_free_odd(pop, root);
	n = walk(root, &intact, &max_id);
	tap_ok(n == SUITE_RECORDS / 2 && D_RO(root)->count == n && count_objects(pop) == n, "transactional frees leave %d records", SUITE_RECORDS / 2);

	/* Close, reopen, look again. */
	pmemobj_close(pop);
	PMEMobjpool *other = pmemobj_open(path, "another-layout");
	tap_ok(other == NULL, "opening the pool with another layout name is refused");
	if (other)
		pmemobj_close(other);
	pop = pmemobj_open(path, LAYOUT);
	if (!tap_ok(pop != NULL, "pmemobj_open reopens the pool")) {
		tap_diag("pmemobj_open: %s", pmemobj_errormsg());
		return tap_done();
	}
	root = POBJ_ROOT(pop, struct root);
	n = walk(root, &intact, &max_id);
	int same = D_RO(root)->magic == MAGIC && D_RO(root)->value == 42 && n == SUITE_RECORDS / 2 && intact && D_RO(root)->count == n;
	if (!tap_ok(same, "the data is intact after close and reopen"))
		tap_diag("magic %s, value %llu, %llu records (%s)", D_RO(root)->magic == MAGIC ? "ok" : "wrong",
			 (unsigned long long)D_RO(root)->value, (unsigned long long)n, intact ? "intact" : "corrupt");
	pmemobj_close(pop);

	int check = pmemobj_check(path, LAYOUT);
	if (!tap_ok(check == 1, "pmemobj_check finds the pool consistent"))
		tap_diag("pmemobj_check returned %d: %s", check, pmemobj_errormsg());
	return tap_done();
}

static int write_pool(const char *path, uint64_t n, int hold)
{
	if (n < 1)
		tap_bail("write needs at least one record");
	tap_plan(hold ? 3 : 2);
	unlink(path);
	PMEMobjpool *pop = pmemobj_create(path, LAYOUT, POOL_SIZE, 0600);
	if (!tap_ok(pop != NULL, "pmemobj_create makes %s", path)) {
		tap_diag("pmemobj_create: %s", pmemobj_errormsg());
		return 1;
	}
	sync_pool_metadata(path);
	TOID(struct root) root = POBJ_ROOT(pop, struct root);
	tx_commit_value(pop, root, 42);
	uint64_t done = tx_push_records(pop, root, 0, n, 1);
	tap_ok(done == n && D_RO(root)->count == n, "%llu records committed, one transaction each", (unsigned long long)n);
	if (hold)
		tx_hold(pop, root, n); /* does not return */
	pmemobj_close(pop);
	return tap_failed ? 1 : 0;
}

static int verify_pool(const char *path, uint64_t n)
{
	PMEMobjpool *pop = pmemobj_open(path, LAYOUT);
	if (!tap_ok(pop != NULL, "the pool opens (recovery ran)")) {
		tap_diag("pmemobj_open: %s", pmemobj_errormsg());
		return tap_done();
	}
	TOID(struct root) root = POBJ_ROOT(pop, struct root);
	int intact;
	uint64_t max_id;
	uint64_t found = walk(root, &intact, &max_id);
	if (!tap_ok(D_RO(root)->count == n && found == n, "exactly the %llu committed records are there", (unsigned long long)n))
		tap_diag("count %llu, %llu records in the list", (unsigned long long)D_RO(root)->count, (unsigned long long)found);
	if (!tap_ok(intact && max_id + 1 == n, "every committed record holds its value and the uncommitted record is gone"))
		tap_diag("%s, highest id %llu", intact ? "values intact" : "a record holds a wrong value", (unsigned long long)max_id);
	TOID(struct record) last = D_RO(root)->head;
	while (!TOID_IS_NULL(last) && !TOID_IS_NULL(D_RO(last)->next))
		last = D_RO(last)->next;
	int first_ok = !TOID_IS_NULL(last) && D_RO(last)->id == 0 && D_RO(last)->value == expected_value(0) && D_RO(root)->value == 42;
	tap_ok(first_ok, "the interrupted transaction's changes were rolled back");
	pmemobj_close(pop);
	int check = pmemobj_check(path, LAYOUT);
	if (!tap_ok(check == 1, "pmemobj_check finds the pool consistent"))
		tap_diag("pmemobj_check returned %d: %s", check, pmemobj_errormsg());
	return tap_done();
}

int main(int argc, char **argv)
{
	tap_start();
	if (argc >= 3 && strcmp(argv[1], "suite") == 0)
		return suite(argv[2]);
	if (argc >= 4 && strcmp(argv[1], "write") == 0)
		return write_pool(argv[2], strtoull(argv[3], NULL, 10), argc > 4 && strcmp(argv[4], "--hold") == 0);
	if (argc >= 4 && strcmp(argv[1], "verify") == 0)
		return verify_pool(argv[2], strtoull(argv[3], NULL, 10));
	tap_bail("usage: pmemlab-pmemobj suite DIR | write POOL N [--hold] | verify POOL N");
	return 2;
}
