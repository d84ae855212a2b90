/*
 * persist.c - store writes a worker cannot drop, tried until they succeed.
 *
 * A worker that has done a task's work and cannot record it (the store's
 * disk is full, an I/O error, a lock held too long by another process)
 * must not let the task go: a task left `running` in the store reads
 * IN_PROGRESS to the WFM until apubid restarts. So the writes that decide
 * what happens to a task - its final state, its retry, its attempt, its
 * items - are tried again, with a growing pause, until the store takes
 * them, and the worker keeps the task meanwhile. Only the flag passed in
 * ends the wait: the pool's stop flag for a final state (apubid is
 * stopping: the task stays running in the store and store_recover queues
 * it again at the next start), the worker's own flag inside a transfer
 * (which also stops for a cancel or the task timeout, handled by the
 * caller as for any stopped transfer).
 *
 * The pause starts at 100 ms and doubles up to 5 s: a store back after a
 * moment is used at once, one that stays full is asked every few seconds,
 * not hammered. The log gets one warning when a write starts failing and
 * one line when it succeeds again, not one per try; the store's own
 * message is logged by store.c when it first fails.
 *
 * Nothing here is shared between threads: a struct persist belongs to the
 * worker running the loop.
 */
#include "apubid.h"

#include <unistd.h>

#define PERSIST_FIRST_MS 100
#define PERSIST_MAX_MS 5000
/* How often *stop is looked at during a pause. */
#define PERSIST_SLICE_MS 50

int persist_wait(struct persist *p, volatile sig_atomic_t *stop)
{
	if (p->tries++ == 0) {
		p->since_ms = util_mono_ms();
		p->delay_ms = PERSIST_FIRST_MS;
		log_warn("task %s: cannot record %s; keeping the task and trying again until "
			 "the store takes it", p->task, p->what);
	}
	int64_t until = util_mono_ms() + p->delay_ms;
	for (;;) {
		if (*stop) {
			log_warn("task %s: %s not recorded after %d tries: stopping", p->task,
				 p->what, p->tries);
			return -1;
		}
		int64_t left = until - util_mono_ms();
		if (left <= 0)
			break;
		usleep((useconds_t)(left < PERSIST_SLICE_MS ? left : PERSIST_SLICE_MS) * 1000);
	}
	p->delay_ms *= 2;
	if (p->delay_ms > PERSIST_MAX_MS)
		p->delay_ms = PERSIST_MAX_MS;
	return 0;
}

void persist_done(struct persist *p)
{
	if (p->tries > 0)
		log_info("task %s: %s recorded after %d failed tr%s (%.1f s)", p->task, p->what,
			 p->tries, p->tries == 1 ? "y" : "ies",
			 (double)(util_mono_ms() - p->since_ms) / 1000.0);
	p->tries = 0;
}
