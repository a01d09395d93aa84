/*
 * lock: the mutex of the shards and slab classes — one 32-bit word and a futex, the classic
 * three-state lock (0 free, 1 held, 2 held and someone may sleep on it; U. Drepper, "Futexes
 * Are Tricky", mutex3). Uncontended, lock and unlock are one atomic instruction each;
 * glibc's pthread_mutex_trylock/unlock were ~35 and ~25 instructions (callgrind), paid once
 * per get and three times per set. Not recursive, no owner check, no error returns: the
 * shard and class locks need none of that (CACHED_DEBUG builds check the shard owner apart).
 */
#pragma once

#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

struct slock {
    _Atomic uint32_t v;
};

static inline void slock_init(struct slock *l)
{
    atomic_init(&l->v, 0);
}

static inline bool slock_trylock(struct slock *l)
{
    uint32_t free_ = 0;
    return atomic_compare_exchange_strong_explicit(&l->v, &free_, 1, memory_order_acquire,
                                                   memory_order_relaxed);
}

static inline void slock_lock(struct slock *l)
{
    if (slock_trylock(l))
        return;
    /* Contended: mark the lock as having sleepers (2) and sleep until it is handed free. */
    while (atomic_exchange_explicit(&l->v, 2, memory_order_acquire) != 0)
        syscall(SYS_futex, &l->v, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
}

static inline void slock_unlock(struct slock *l)
{
    if (atomic_exchange_explicit(&l->v, 0, memory_order_release) == 2)
        syscall(SYS_futex, &l->v, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}
