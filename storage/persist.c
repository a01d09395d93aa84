/*
 * persist: warm restart (-e FILE). The item arena lives in FILE, mapped MAP_SHARED; a clean
 * stop (storage_save, on SIGUSR1) writes FILE.meta describing it; the next start with the
 * same settings reads FILE.meta, checks it and the arena, and links every live item again.
 *
 * Memory file: a 4096-byte header (magic, format, run id, arena size), then the arena.
 * FILE.meta (binary, little-endian, this build's layout):
 *
 *   struct persist_meta             magic, format, run id, sizes, settings, class sizes,
 *                                   clocks at save, CAS counter, flush state, item count
 *   uint8_t  page_cls[assigned]     class of each page handed out (padded to 8 bytes)
 *   uint64_t page_sum[assigned]     xxHash64 of each of those pages
 *   uint64_t meta_sum               xxHash64 of everything above
 *
 * What makes it safer than memcached's -e:
 *  - FILE.meta is consumed (unlinked) at start whatever happens next, so a kill -9 after a
 *    warm start (or a crash, or a SIGTERM, which saves nothing) never reloads an old state.
 *  - FILE.meta is tied to FILE: the run id in both must agree and FILE must have exactly the
 *    size recorded; nothing of FILE is read before its size is checked (no SIGBUS, no
 *    zero-extended half arena).
 *  - Every byte the restore trusts is checksummed: the .meta as a whole, each arena page.
 *    Each item is still bounds-checked against its chunk before it is linked.
 *  - Settings that change the layout (-m, -I, -f, -n, -C, and the slab class table itself)
 *    must match, or the file is refused.
 * Any refusal leaves the arena empty (FILE truncated and re-extended: zeroes) and one line in
 * storage_persist_note() saying why; the server logs it.
 *
 * Time: items hold rel_time_t stamps of the old process. The save records its rel "now" and
 * the wall clock, which fixes the old stamps against the wall clock; the restore shifts them
 * onto this process's clock, so TTLs keep counting down while the server is down, and items
 * that expired (or were flushed) meanwhile are freed instead of linked.
 *
 * Nothing here logs or knows about signals: the server calls storage_save() after its
 * workers have stopped (no thread touches the arena then).
 */
#include "storage/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "storage/persist.h"

#define PERSIST_FORMAT 1u
#define FILE_HEADER_BYTES 4096
#define META_MAX_BYTES (64u << 20)

static const char file_magic[8] = {'c', 'a', 'c', 'h', 'e', 'd', 'A', 'R'};
static const char meta_magic[8] = {'c', 'a', 'c', 'h', 'e', 'd', 'M', 'D'};

struct file_header {
    char magic[8];
    uint32_t format;
    uint32_t pad;
    uint64_t run_id[2];
    uint64_t arena_bytes;
};

struct persist_meta {
    char magic[8];
    uint32_t format;
    uint32_t meta_bytes;     /* length of the whole .meta file */
    uint64_t run_id[2];      /* must equal the memory file's */
    uint64_t file_bytes;     /* size of the memory file */
    uint64_t mem_limit, item_size_max;
    double growth_factor;
    uint32_t chunk_min, use_cas;
    uint32_t page_size, npages, pages_assigned, nclasses;
    uint32_t header_size, item_struct;
    uint32_t class_size[SLAB_MAX_CLASSES];
    int64_t save_wall;       /* unix seconds at the save */
    uint32_t save_rel;       /* clock_now() at the save */
    uint32_t oldest_live;    /* flush state, old clock */
    uint64_t oldest_cas, cas_next;
    uint64_t items;          /* linked items at the save (sizes the hash tables) */
    uint32_t table_power;    /* largest shard table at the save (log2 buckets) */
    uint32_t nshards;
};

static struct {
    int fd;
    char *path, *meta_path, *tmp_path;
    char *map;
    size_t map_bytes;
    uint64_t run_id[2];
    off_t found_bytes;       /* size of FILE when we opened it */
    char note[512];
    bool restored;
} pst = {.fd = -1};

static char *path_with(const char *path, const char *suffix)
{
    size_t n = strlen(path), m = strlen(suffix);
    char *p = mem_alloc(n + m + 1);
    memcpy(p, path, n);
    memcpy(p + n, suffix, m + 1);
    return p;
}

static void new_run_id(void)
{
    if (getrandom(pst.run_id, sizeof pst.run_id, 0) != (ssize_t)sizeof pst.run_id) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        pst.run_id[0] = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        pst.run_id[1] = (uint64_t)getpid();
    }
}

static void write_file_header(void)
{
    struct file_header h = {.format = PERSIST_FORMAT, .arena_bytes = stg.arena_bytes};
    memcpy(h.magic, file_magic, sizeof h.magic);
    memcpy(h.run_id, pst.run_id, sizeof h.run_id);
    memcpy(pst.map, &h, sizeof h);
}

/* Empties FILE: truncation drops every page (tmpfs frees them), re-extension reads zeroes. */
static int file_reset(void)
{
    if (ftruncate(pst.fd, 0) < 0 || ftruncate(pst.fd, (off_t)pst.map_bytes) < 0)
        return -1;
    return 0;
}

char *persist_map(size_t arena_bytes, char *errbuf, size_t errlen)
{
    const char *path = stg.cfg.memory_file;
    pst.path = mem_strdup(path);
    pst.meta_path = path_with(path, ".meta");
    pst.tmp_path = path_with(path, ".meta.tmp");
    pst.note[0] = '\0';
    pst.restored = false;
    pst.fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (pst.fd < 0) {
        snprintf(errbuf, errlen, "cannot open memory file %s: %s", path, strerror(errno));
        return NULL;
    }
    /* Two processes on one file would corrupt each other's items. */
    if (flock(pst.fd, LOCK_EX | LOCK_NB) < 0) {
        snprintf(errbuf, errlen, "memory file %s is in use by another process", path);
        return NULL;
    }
    struct stat st;
    if (fstat(pst.fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(errbuf, errlen, "memory file %s is not a regular file", path);
        return NULL;
    }
    pst.found_bytes = st.st_size;
    pst.map_bytes = FILE_HEADER_BYTES + arena_bytes;
    /* Mapped at its final size now; nothing past found_bytes is read before the restore
     * has checked the size (a shorter file is reset first). */
    if (st.st_size < (off_t)FILE_HEADER_BYTES && ftruncate(pst.fd, (off_t)pst.map_bytes) < 0) {
        snprintf(errbuf, errlen, "cannot size memory file %s: %s", path, strerror(errno));
        return NULL;
    }
    void *p = mmap(NULL, pst.map_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, pst.fd, 0);
    if (p == MAP_FAILED) {
        snprintf(errbuf, errlen, "cannot map memory file %s: %s", path, strerror(errno));
        return NULL;
    }
    pst.map = p;
    return pst.map + FILE_HEADER_BYTES;
}

void persist_unmap(void)
{
    if (pst.map)
        munmap(pst.map, pst.map_bytes);
    pst.map = NULL;
    if (pst.fd >= 0)
        close(pst.fd); /* drops the flock */
    pst.fd = -1;
    mem_free(pst.path);
    mem_free(pst.meta_path);
    mem_free(pst.tmp_path);
    pst.path = pst.meta_path = pst.tmp_path = NULL;
}

/* ---- restore ---- */

#define NOTE(...) snprintf(pst.note, sizeof pst.note, __VA_ARGS__)

/* Reads FILE.meta (bounded) into a buffer; consumes it. NULL with the note set when absent
 * or unreadable. */
static unsigned char *meta_read(size_t *len)
{
    int fd = open(pst.meta_path, O_RDONLY | O_CLOEXEC);
    unlink(pst.tmp_path); /* a save cut short (kill -9 while saving) */
    if (fd < 0) {
        if (errno != ENOENT)
            NOTE("%s: cannot read: %s", pst.meta_path, strerror(errno));
        else if (pst.found_bytes > 0)
            NOTE("%s has no %s: it was not saved with SIGUSR1 (stopped by SIGTERM, kill -9 "
                 "or a crash, or its saved state was already used)",
                 pst.path, pst.meta_path);
        return NULL;
    }
    unlink(pst.meta_path); /* consumed: whatever happens next, never reloaded */
    struct stat st;
    unsigned char *buf = NULL;
    if (fstat(fd, &st) < 0 || st.st_size < (off_t)sizeof(struct persist_meta) + 8 ||
        st.st_size > (off_t)META_MAX_BYTES) {
        NOTE("%s: %lld bytes is no description this build wrote (truncated or not ours)",
             pst.meta_path, (long long)st.st_size);
        close(fd);
        return NULL;
    }
    buf = mem_alloc((size_t)st.st_size);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (got != (size_t)st.st_size) {
        NOTE("%s: short read", pst.meta_path);
        mem_free(buf);
        return NULL;
    }
    *len = got;
    return buf;
}

/* Checks the description against itself, this build, the settings and FILE. */
static bool meta_check(const unsigned char *buf, size_t len, const struct persist_meta *m)
{
    if (memcmp(m->magic, meta_magic, sizeof m->magic) != 0) {
        NOTE("%s: not a cached memory-file description (bad magic)", pst.meta_path);
        return false;
    }
    if (m->format != PERSIST_FORMAT) {
        NOTE("%s: written by an incompatible cached version (format %u, this build reads "
             "format %u)",
             pst.meta_path, m->format, PERSIST_FORMAT);
        return false;
    }
    uint64_t sum;
    memcpy(&sum, buf + len - 8, 8);
    if (m->meta_bytes != len || storage_hash(buf, len - 8) != sum) {
        NOTE("%s: corrupt (checksum mismatch or truncated)", pst.meta_path);
        return false;
    }
    const struct storage_config *c = &stg.cfg;
    if (m->mem_limit != c->mem_limit) {
        NOTE("%s: saved with -m %llu, started with -m %llu (memory limit must not change)",
             pst.meta_path, (unsigned long long)(m->mem_limit >> 20),
             (unsigned long long)(c->mem_limit >> 20));
        return false;
    }
    if (m->item_size_max != c->item_size_max) {
        NOTE("%s: saved with -I %llu, started with -I %llu (max item size must not change)",
             pst.meta_path, (unsigned long long)m->item_size_max,
             (unsigned long long)c->item_size_max);
        return false;
    }
    if (m->growth_factor != c->growth_factor) {
        NOTE("%s: saved with -f %g, started with -f %g (growth factor must not change)",
             pst.meta_path, m->growth_factor, c->growth_factor);
        return false;
    }
    if (m->chunk_min != c->chunk_min) {
        NOTE("%s: saved with -n %u, started with -n %u (slab min size must not change)",
             pst.meta_path, m->chunk_min, c->chunk_min);
        return false;
    }
    if (m->use_cas != (uint32_t)c->use_cas) {
        NOTE("%s: saved %s -C, started %s -C (CAS on/off must not change)", pst.meta_path,
             m->use_cas ? "without" : "with", c->use_cas ? "without" : "with");
        return false;
    }
    bool layout = m->page_size == stg.page_size && m->npages == stg.npages &&
                  m->nclasses == stg.nclasses && m->header_size == stg.header_size &&
                  m->item_struct == sizeof(struct item) && m->pages_assigned <= stg.npages;
    for (unsigned i = 0; layout && i < stg.nclasses; i++)
        layout = m->class_size[i] == stg.classes[i].size;
    if (!layout) {
        NOTE("%s: slab layout differs from this build's (written by an incompatible cached "
             "version)",
             pst.meta_path);
        return false;
    }
    size_t pa = m->pages_assigned, cls_bytes = (pa + 7) & ~(size_t)7;
    if (len != sizeof *m + cls_bytes + pa * 8 + 8) {
        NOTE("%s: corrupt (length does not match its page count)", pst.meta_path);
        return false;
    }
    if (m->file_bytes != pst.map_bytes || pst.found_bytes != (off_t)pst.map_bytes) {
        NOTE("%s is %lld bytes, %s says %llu (truncated or resized)", pst.path,
             (long long)pst.found_bytes, pst.meta_path, (unsigned long long)m->file_bytes);
        return false;
    }
    struct file_header fh;
    memcpy(&fh, pst.map, sizeof fh);
    if (memcmp(fh.magic, file_magic, sizeof fh.magic) != 0 || fh.format != PERSIST_FORMAT ||
        fh.arena_bytes != stg.arena_bytes ||
        memcmp(fh.run_id, m->run_id, sizeof fh.run_id) != 0) {
        NOTE("%s does not belong to %s (run id differs: another run's description, or the "
             "file was replaced)",
             pst.meta_path, pst.path);
        return false;
    }
    return true;
}

/* Shifts old-process rel times onto this process's clock. */
struct restore_ctx {
    const struct persist_meta *m;
    int64_t delta;           /* new rel = old rel + delta */
    rel_time_t old_now;      /* "now" on the old clock */
    uint64_t max_cas, linked, dropped;
    bool bad;
};

static rel_time_t shift(int64_t t, int64_t delta, rel_time_t lo)
{
    int64_t v = t + delta;
    if (v < (int64_t)lo)
        return lo;
    return v > (int64_t)UINT32_MAX ? UINT32_MAX : (rel_time_t)v;
}

/* Links one item found in the arena, or returns false to have its chunk freed. */
static bool restore_item(struct item *it, uint32_t chunk, void *arg)
{
    struct restore_ctx *rc = arg;
    const struct persist_meta *m = rc->m;
    uint8_t fl = item_iflags(it);
    if (!(fl & ITEM_LINKED)) /* bit 6 is ITEM_HOT on a linked item (item.h) */
        return false; /* free, or allocated but not stored when saved */
    if (it->nkey == 0 || it->nkey > KEY_MAX_LENGTH ||
        (bool)(fl & ITEM_CAS) != stg.cfg.use_cas ||
        (uint64_t)stg.header_size + it->nkey + it->nbytes > chunk) {
        rc->bad = true;
        return false;
    }
    uint64_t cas = item_cas(it);
    bool expired = it->exptime != 0 && it->exptime <= rc->old_now;
    bool flushed = m->oldest_live != 0 && m->oldest_live <= rc->old_now &&
                   (it->atime <= m->oldest_live ||
                    (m->oldest_cas != 0 && cas != 0 && cas < m->oldest_cas));
    if (expired || flushed) {
        rc->dropped++;
        return false;
    }
    if (it->exptime != 0)
        it->exptime = shift(it->exptime, rc->delta, 1);
    it->atime = shift(it->atime, rc->delta, 0);
    if (cas > rc->max_cas)
        rc->max_cas = cas;
    uint64_t hv = storage_hash(item_key(it), it->nkey);
    struct shard *sh = shard_of(hv);
    atomic_store_explicit(&it->refcount, 1, memory_order_relaxed);
    /* two walkers share the shards (restore_walk); a leaf lock, held for a few stores */
    pthread_mutex_lock(&sh->lock);
    uint32_t *b = &sh->table[hv & (((uint64_t)1 << sh->power) - 1)];
    it->hnext = *b;
    *b = item_ref_of(it);
    sh->count++;
    sh->st.curr_items++;
    sh->st.total_items++;
    sh->st.bytes += item_total_size(it);
    pthread_mutex_unlock(&sh->lock);
    rc->linked++;
    return true;
}

/*
 * The restore's one random access per item is its bucket. With 4 KB pages every one of them
 * misses the TLB (about 300 ns in a VM, against 70 ns on 2 MB pages: 10M items spent 10 s
 * there), so the tables are built in one transparent-huge-page region and copied to their
 * own allocations afterwards (a sequential 4 bytes per bucket).
 */
static struct {
    char *base;
    size_t bytes;
} staging;

#define HUGE_PAGE (2u << 20)

/* Sizes every shard's table for the items to come, so the restore never migrates. */
static void tables_presize(uint64_t items, uint32_t saved_power)
{
    uint64_t per = items / stg.nshards + 1;
    uint32_t power = 0;
    for (uint32_t i = 0; i < stg.nshards; i++)
        if (stg.shards[i].power > power)
            power = stg.shards[i].power;
    /* as large as before the restart too (memcached's restart.t checks the hash power level
     * comes back), unless the shard count changed */
    if (saved_power > power && saved_power <= 30)
        power = saved_power;
    while (((uint64_t)1 << power) < per && power < 30)
        power++;
    size_t each = ((size_t)1 << power) * sizeof(uint32_t);
    size_t bytes = each * stg.nshards + HUGE_PAGE;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED)
        return; /* the tables stay as they are; the restore is only slower */
    staging.base = p;
    staging.bytes = bytes;
    char *t = (char *)(((uintptr_t)p + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
#ifdef MADV_HUGEPAGE
    madvise(t, each * stg.nshards, MADV_HUGEPAGE);
#endif
    for (uint32_t i = 0; i < stg.nshards; i++) {
        struct shard *sh = &stg.shards[i];
        mem_free(sh->table);
        sh->power = power;
        sh->table = (uint32_t *)(t + each * i);
    }
}

/* Moves the tables out of the staging region into allocations of their own. */
static void tables_settle(void)
{
    if (staging.base == NULL)
        return;
    for (uint32_t i = 0; i < stg.nshards; i++) {
        struct shard *sh = &stg.shards[i];
        size_t each = ((size_t)1 << sh->power) * sizeof(uint32_t);
        uint32_t *t = mem_alloc(each);
        memcpy(t, sh->table, each);
        sh->table = t;
    }
    munmap(staging.base, staging.bytes);
    staging.base = NULL;
}

/* Back to an empty cache after a refused or failed restore (single-threaded, at setup). */
static void storage_empty(void)
{
    for (uint32_t i = 0; i < stg.nshards; i++) {
        struct shard *sh = &stg.shards[i];
        memset(sh->table, 0, ((size_t)1 << sh->power) * sizeof(uint32_t));
        sh->count = 0;
        memset(&sh->st, 0, sizeof sh->st);
    }
    slab_forget_pages();
}

static uint64_t ms_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (uint64_t)((t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000);
}

struct verify_job {
    const uint8_t *page_cls;
    const unsigned char *sums;
    uint32_t lo, hi, bad;
};

static void *verify_run(void *arg)
{
    struct verify_job *j = arg;
    j->bad = UINT32_MAX;
    for (uint32_t pg = j->lo; pg < j->hi; pg++) {
        uint64_t want;
        memcpy(&want, j->sums + (size_t)pg * 8, 8);
        if (j->page_cls[pg] >= stg.nclasses ||
            storage_hash(stg.arena + (size_t)pg * stg.page_size, stg.page_size) != want) {
            j->bad = pg;
            break;
        }
    }
    return NULL;
}

/*
 * Checks every saved page against its checksum; the first bad page, or UINT32_MAX. Two
 * threads share the pages: the first touch of each page of the mapping is the restore's
 * largest cost (in a VM about 2.5 ms per MB, against 0.1 ms per MB once mapped), and it
 * runs in parallel; the item walk that follows finds the pages mapped and cached.
 */
static uint32_t pages_verify(const uint8_t *page_cls, const unsigned char *sums, uint32_t pa)
{
    struct verify_job a = {page_cls, sums, 0, pa / 2, 0}, b = {page_cls, sums, pa / 2, pa, 0};
    pthread_t t;
    bool threaded = pa >= 8 && pthread_create(&t, NULL, verify_run, &b) == 0;
    if (!threaded)
        a.hi = pa;
    verify_run(&a);
    if (threaded)
        pthread_join(t, NULL);
    if (a.bad != UINT32_MAX)
        return a.bad;
    return threaded ? b.bad : UINT32_MAX;
}

struct walk_job {
    const uint8_t *page_cls;
    uint32_t lo, hi, bad;
    struct restore_ctx rc;
};

static void *walk_run(void *arg)
{
    struct walk_job *j = arg;
    j->bad = UINT32_MAX;
    for (uint32_t pg = j->lo; pg < j->hi; pg++) {
        slab_restore_page(j->page_cls[pg], pg, restore_item, &j->rc);
        if (j->rc.bad) {
            j->bad = pg;
            break;
        }
    }
    return NULL;
}

/* Links the items of every page, two threads each taking half the pages (the shard locks
 * and class locks keep them apart). The first corrupt page, or UINT32_MAX; the counts go
 * into *rc. */
static uint32_t restore_walk(const uint8_t *page_cls, uint32_t pa, struct restore_ctx *rc)
{
    struct walk_job a = {page_cls, 0, pa / 2, 0, *rc}, b = {page_cls, pa / 2, pa, 0, *rc};
    pthread_t t;
    bool threaded = pa >= 8 && pthread_create(&t, NULL, walk_run, &b) == 0;
    if (!threaded)
        a.hi = pa;
    walk_run(&a);
    if (threaded)
        pthread_join(t, NULL);
    *rc = a.rc;
    if (threaded) {
        rc->linked += b.rc.linked;
        rc->dropped += b.rc.dropped;
        if (b.rc.max_cas > rc->max_cas)
            rc->max_cas = b.rc.max_cas;
    }
    if (a.bad != UINT32_MAX)
        return a.bad;
    return threaded ? b.bad : UINT32_MAX;
}

/* CPU time of the whole process (both restore threads), ms. */
static uint64_t cpu_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

static bool restore_from(const unsigned char *buf, const struct persist_meta *m)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint64_t cpu0 = cpu_ms();
    size_t pa = m->pages_assigned, cls_bytes = (pa + 7) & ~(size_t)7;
    const uint8_t *page_cls = buf + sizeof *m;
    const unsigned char *sums = buf + sizeof *m + cls_bytes;
    int64_t wall = (int64_t)time(NULL);
    int64_t elapsed = wall > m->save_wall ? wall - m->save_wall : 0;
    struct restore_ctx rc = {
        .m = m,
        .delta = (m->save_wall - (int64_t)m->save_rel) - (int64_t)clock_process_started,
        .old_now = shift(m->save_rel, elapsed, 0),
    };
    tables_presize(m->items, m->nshards == stg.nshards ? m->table_power : 0);
#ifdef MADV_POPULATE_WRITE
    /* Map the saved pages in one call rather than a fault per 4 KB page. Only the pages
     * handed out, so RSS stays what the saved cache used. Failure is harmless (the checksum
     * pass faults them in). */
    if (pa > 0)
        madvise(pst.map, FILE_HEADER_BYTES + pa * (size_t)stg.page_size, MADV_POPULATE_WRITE);
#endif
    uint32_t bad = pages_verify(page_cls, sums, (uint32_t)pa);
    if (bad != UINT32_MAX) {
        NOTE("%s: page %u of %zu fails its checksum (corrupt)", pst.path, bad, pa);
        tables_settle();
        storage_empty();
        return false;
    }
    uint64_t verify_ms = ms_since(&t0);
    bad = restore_walk(page_cls, (uint32_t)pa, &rc);
    tables_settle();
    if (bad != UINT32_MAX) {
        NOTE("%s: page %u holds an item that does not fit its chunk (corrupt)", pst.path, bad);
        storage_empty();
        return false;
    }
    stg.pages_assigned = (uint32_t)pa;
    uint64_t next = m->cas_next > rc.max_cas ? m->cas_next : rc.max_cas + 1;
    atomic_store(&stg.cas_next, next ? next : 1);
    /* A delayed flush still pending carries over; one already passed has been applied (its
     * items were dropped above), so it is cleared. */
    if (m->oldest_live > rc.old_now) {
        atomic_store(&stg.oldest_live, shift(m->oldest_live, rc.delta, 1));
        atomic_store(&stg.oldest_cas, m->oldest_cas);
    }
    char dropped[160] = "";
    if (rc.dropped)
        snprintf(dropped, sizeof dropped, "; %llu more expired or were flushed before the "
                 "restart and were dropped", (unsigned long long)rc.dropped);
    NOTE("restored %llu items from %s in %llu ms (checksums %llu ms; CPU %llu ms)%s",
         (unsigned long long)rc.linked, pst.path, (unsigned long long)ms_since(&t0),
         (unsigned long long)verify_ms, (unsigned long long)(cpu_ms() - cpu0), dropped);
    return true;
}

int persist_restore(void)
{
    size_t len = 0;
    unsigned char *buf = meta_read(&len);
    bool ok = false;
    if (buf != NULL) {
        struct persist_meta m;
        memcpy(&m, buf, sizeof m);
        ok = meta_check(buf, len, &m) && restore_from(buf, &m);
        mem_free(buf);
    }
    if (!ok && file_reset() < 0) {
        NOTE("%s: cannot reset: %s", pst.path, strerror(errno));
        return -1;
    }
    pst.restored = ok;
    /* A new run id: a copy of the consumed .meta can never match this file again. */
    new_run_id();
    write_file_header();
    return 0;
}

bool storage_persist_note(char *buf, size_t len, bool *restored)
{
    *restored = pst.restored;
    if (pst.note[0] == '\0')
        return false;
    snprintf(buf, len, "%s", pst.note);
    return true;
}

/* ---- save ---- */

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

int storage_save(char *errbuf, size_t errlen, uint64_t *items_out)
{
    if (!stg.ready || pst.map == NULL) {
        snprintf(errbuf, errlen, "no memory file (-e) to save to");
        return -1;
    }
    size_t pa = stg.pages_assigned, cls_bytes = (pa + 7) & ~(size_t)7;
    size_t len = sizeof(struct persist_meta) + cls_bytes + pa * 8 + 8;
    unsigned char *buf = mem_calloc(1, len);
    struct persist_meta m = {
        .format = PERSIST_FORMAT,
        .meta_bytes = (uint32_t)len,
        .file_bytes = pst.map_bytes,
        .mem_limit = stg.cfg.mem_limit,
        .item_size_max = stg.cfg.item_size_max,
        .growth_factor = stg.cfg.growth_factor,
        .chunk_min = stg.cfg.chunk_min,
        .use_cas = stg.cfg.use_cas,
        .page_size = stg.page_size,
        .npages = stg.npages,
        .pages_assigned = (uint32_t)pa,
        .nclasses = stg.nclasses,
        .header_size = stg.header_size,
        .item_struct = sizeof(struct item),
        .save_wall = (int64_t)time(NULL),
        .save_rel = clock_now(),
        .oldest_live = atomic_load(&stg.oldest_live),
        .oldest_cas = atomic_load(&stg.oldest_cas),
        .cas_next = atomic_load(&stg.cas_next),
    };
    memcpy(m.magic, meta_magic, sizeof m.magic);
    memcpy(m.run_id, pst.run_id, sizeof m.run_id);
    for (unsigned i = 0; i < stg.nclasses; i++)
        m.class_size[i] = stg.classes[i].size;
    m.nshards = stg.nshards;
    for (uint32_t i = 0; i < stg.nshards; i++) {
        struct shard *sh = &stg.shards[i];
        m.items += sh->count;
        if (sh->power > m.table_power)
            m.table_power = sh->power;
    }
    uint8_t *page_cls = buf + sizeof m;
    unsigned char *sums = buf + sizeof m + cls_bytes;
    for (uint32_t pg = 0; pg < pa; pg++) {
        page_cls[pg] = stg.pmeta[pg].cls;
        uint64_t s = storage_hash(stg.arena + (size_t)pg * stg.page_size, stg.page_size);
        memcpy(sums + (size_t)pg * 8, &s, 8);
    }
    memcpy(buf, &m, sizeof m);
    uint64_t sum = storage_hash(buf, len - 8);
    memcpy(buf + len - 8, &sum, 8);

    /* The arena reaches the file before the description that vouches for it; the
     * description appears whole (rename) or not at all. */
    int rc = -1;
    int fd = -1;
    if (msync(pst.map, pst.map_bytes, MS_SYNC) < 0) {
        snprintf(errbuf, errlen, "msync %s: %s", pst.path, strerror(errno));
        goto out;
    }
    fd = open(pst.tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write_all(fd, buf, len) < 0 || fsync(fd) < 0) {
        snprintf(errbuf, errlen, "cannot write %s: %s", pst.tmp_path, strerror(errno));
        goto out;
    }
    if (rename(pst.tmp_path, pst.meta_path) < 0) {
        snprintf(errbuf, errlen, "cannot rename %s: %s", pst.tmp_path, strerror(errno));
        goto out;
    }
    if (items_out)
        *items_out = m.items;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (rc < 0)
        unlink(pst.tmp_path);
    mem_free(buf);
    return rc;
}
