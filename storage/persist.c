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
 * Speed: the restore reads each saved page with pread, checks it, links its items and writes
 * it back with pwrite, on two threads (restore_pages); it never touches the mapping, whose
 * first touch per 4 KB page is its most expensive part in a VM. The tables are sized from the
 * saved item count before the first item is linked.
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
#include <sys/statvfs.h>
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

/* A sparse FILE on a filesystem without room for it (a tmpfs whose size= is below -m, a full
 * disk) maps fine, but the first store into a page without a block raises SIGBUS: memcached
 * 1.6.18 dies that way. Checked at startup instead, so it is a clear refusal. Not reserved
 * with fallocate: that would zero every page of -m before the first request (about 0.8 s per
 * GB here) and undo what the restore saves by never touching the mapping. What another
 * process writes to the filesystem later can still take the room (as with memcached). */
static int file_room(const struct stat *st, char *errbuf, size_t errlen)
{
    struct statvfs vs;
    uint64_t have = (uint64_t)st->st_blocks * 512u;
    if (have >= pst.map_bytes || fstatvfs(pst.fd, &vs) < 0)
        return 0;
    uint64_t need = pst.map_bytes - have;
    uint64_t avail = (uint64_t)vs.f_bavail * vs.f_frsize;
    if (avail >= need)
        return 0;
    snprintf(errbuf, errlen,
             "memory file %s needs %llu more bytes and its filesystem has %llu free: %s",
             pst.path, (unsigned long long)need, (unsigned long long)avail, strerror(ENOSPC));
    return -1;
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
    if (file_room(&st, errbuf, errlen) < 0)
        return NULL;
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
};

static rel_time_t shift(int64_t t, int64_t delta, rel_time_t lo)
{
    int64_t v = t + delta;
    if (v < (int64_t)lo)
        return lo;
    return v > (int64_t)UINT32_MAX ? UINT32_MAX : (rel_time_t)v;
}

enum { CHUNK_FREE = 0, CHUNK_LINK, CHUNK_DROP, CHUNK_BAD };

/* What to do with the chunk at it (a page whose checksum has passed): link it, free it,
 * drop it (expired or flushed meanwhile: freed, and counted), or refuse the file. */
static int chunk_classify(const struct item *it, uint32_t chunk, const struct restore_ctx *rc)
{
    const struct persist_meta *m = rc->m;
    uint8_t fl = item_iflags(it);
    if (!(fl & ITEM_LINKED)) /* bit 6 is ITEM_HOT on a linked item (item.h) */
        return CHUNK_FREE; /* free, or allocated but not stored when saved */
    if (it->nkey == 0 || it->nkey > KEY_MAX_LENGTH ||
        (bool)(fl & ITEM_CAS) != stg.cfg.use_cas ||
        (uint64_t)stg.header_size + it->nkey + it->nbytes > chunk)
        return CHUNK_BAD;
    bool expired = it->exptime != 0 && it->exptime <= rc->old_now;
    bool flushed = m->oldest_live != 0 && m->oldest_live <= rc->old_now &&
                   (it->atime <= m->oldest_live ||
                    (m->oldest_cas != 0 && item_cas(it) != 0 && item_cas(it) < m->oldest_cas));
    return expired || flushed ? CHUNK_DROP : CHUNK_LINK;
}

/*
 * The restore's one random access per item is its bucket. With 4 KB pages every one of them
 * misses the TLB (about 300 ns in a VM, against 70 ns on 2 MB pages: 10M items spent 10 s
 * there), so the tables are built in one transparent-huge-page region, and stay there.
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

/* The tables stay where they were built: the staging region becomes theirs (mem_free of each
 * returns its pages; of the last, the region). A copy to allocations of their own cost more
 * than the restore's every other step but one (4 KB pages faulted in, 64 MB for 10M items). */
static void tables_settle(void)
{
    if (staging.base == NULL)
        return;
    mem_adopt(staging.base, staging.bytes, stg.shards[0].table,
              ((size_t)1 << stg.shards[0].power) * sizeof(uint32_t), stg.nshards);
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

/*
 * One restore thread: a range of saved pages. Each page is read with pread into a buffer of
 * this thread's, checked against its checksum, its items linked and its free chunks marked
 * there, and written back with pwrite; then slab_restore_page gives it to its class. The
 * restore never touches the mapping itself: in this VM the first touch of each 4 KB page of
 * a new mapping costs several microseconds (1.3 ms per MB: 200 ms of CPU for 1M items),
 * while pread and pwrite copy through the kernel's own mapping (0.2 ms per MB both ways).
 * A page is mapped into the process when a request first uses it. Two threads share the
 * pages.
 *
 * No lock per item: a bucket head is pushed with a compare-and-swap (the tables were sized
 * beforehand and do not move while the threads run), and each thread counts items and bytes
 * per shard on its own, added to the shards after the join.
 */
struct walk_job {
    const uint8_t *page_cls;
    const unsigned char *sums;
    uint32_t lo, hi;
    uint32_t bad;            /* first page refused, UINT32_MAX none */
    int why, err;            /* BAD_*; errno of BAD_IO */
    struct restore_ctx rc;
    uint64_t max_cas, linked, dropped;
    uint64_t sum_ns, walk_ns;
    char *buf;               /* one page */
    uint64_t *hv;            /* per chunk of the page: its key's hash */
    uint8_t *what;           /* per chunk of the page: CHUNK_* */
    uint64_t *sh_items, *sh_bytes; /* per shard */
};

enum { BAD_SUM = 1, BAD_ITEM, BAD_IO };

#define LINK_AHEAD 8 /* buckets prefetched ahead of the one written */

static uint32_t *bucket_of(uint64_t hv)
{
    struct shard *sh = shard_of(hv);
    return &sh->table[hv & (((uint64_t)1 << sh->power) - 1)];
}

static uint64_t ns_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int io_all(bool wr, char *p, size_t n, off_t off)
{
    while (n > 0) {
        ssize_t k = wr ? pwrite(pst.fd, p, n, off) : pread(pst.fd, p, n, off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            if (k == 0)
                errno = EIO; /* the size was checked: the file shrank under us */
            return -1;
        }
        p += k;
        n -= (size_t)k;
        off += k;
    }
    return 0;
}

/* Links the items of the page in j->buf (page pg, class c) and marks its free chunks; the
 * number linked. */
static uint32_t page_link(struct walk_job *j, uint32_t pg, const struct slab_class *c,
                          uint64_t *requested)
{
    uint32_t used = 0, ref0 = (uint32_t)(((size_t)pg * stg.page_size) >> 3) + 1;
    for (uint32_t i = 0; i < c->perslab; i++) {
        struct item *it = (struct item *)(j->buf + (size_t)i * c->size);
        if (i + LINK_AHEAD < c->perslab && j->what[i + LINK_AHEAD] == CHUNK_LINK)
            __builtin_prefetch(bucket_of(j->hv[i + LINK_AHEAD]), 1);
        if (j->what[i] != CHUNK_LINK) {
            atomic_store_explicit(&it->refcount, 0, memory_order_relaxed);
            atomic_store_explicit(&it->iflags, ITEM_FREE, memory_order_relaxed);
            j->what[i] = 0;
            continue;
        }
        uint64_t hv = j->hv[i];
        if (it->exptime != 0)
            it->exptime = shift(it->exptime, j->rc.delta, 1);
        it->atime = shift(it->atime, j->rc.delta, 0);
        atomic_store_explicit(&it->refcount, 1, memory_order_relaxed);
        uint32_t *b = bucket_of(hv), ref = ref0 + (uint32_t)(((size_t)i * c->size) >> 3);
        uint32_t head = __atomic_load_n(b, __ATOMIC_RELAXED);
        do
            it->hnext = head;
        while (!__atomic_compare_exchange_n(b, &head, ref, true, __ATOMIC_RELAXED,
                                            __ATOMIC_RELAXED));
        uint32_t s = stg.shard_shift >= 64 ? 0 : (uint32_t)(hv >> stg.shard_shift);
        size_t size = item_total_size(it);
        j->sh_items[s]++;
        j->sh_bytes[s] += size;
        *requested += size;
        j->what[i] = 1;
        used++;
    }
    return used;
}

static void *walk_run(void *arg)
{
    struct walk_job *j = arg;
    j->bad = UINT32_MAX;
    for (uint32_t pg = j->lo; pg < j->hi; pg++) {
        uint64_t t0 = ns_now(), want;
        off_t off = (off_t)FILE_HEADER_BYTES + (off_t)pg * stg.page_size;
        memcpy(&want, j->sums + (size_t)pg * 8, 8);
        if (io_all(false, j->buf, stg.page_size, off) < 0) {
            j->why = BAD_IO;
            j->err = errno;
            j->bad = pg;
            break;
        }
        if (j->page_cls[pg] >= stg.nclasses || storage_hash(j->buf, stg.page_size) != want) {
            j->why = BAD_SUM;
            j->bad = pg;
            break;
        }
        uint64_t t1 = ns_now();
        j->sum_ns += t1 - t0;
        /* trusted from here: classify every chunk and hash the keys to link */
        const struct slab_class *c = &stg.classes[j->page_cls[pg]];
        for (uint32_t i = 0; i < c->perslab; i++) {
            const struct item *it = (const struct item *)(j->buf + (size_t)i * c->size);
            int w = chunk_classify(it, c->size, &j->rc);
            if (w == CHUNK_BAD) {
                j->why = BAD_ITEM;
                break;
            }
            j->what[i] = (uint8_t)w;
            if (w == CHUNK_LINK) {
                uint64_t cas = item_cas(it);
                if (cas > j->max_cas)
                    j->max_cas = cas;
                j->hv[i] = storage_hash(item_key(it), it->nkey);
                j->linked++;
                if (i < LINK_AHEAD)
                    __builtin_prefetch(bucket_of(j->hv[i]), 1);
            } else if (w == CHUNK_DROP) {
                j->dropped++;
            }
        }
        if (j->why) {
            j->bad = pg;
            break;
        }
        uint64_t requested = 0;
        uint32_t used = page_link(j, pg, c, &requested);
        if (io_all(true, j->buf, stg.page_size, off) < 0) {
            j->why = BAD_IO;
            j->err = errno;
            j->bad = pg;
            break;
        }
        slab_restore_page(j->page_cls[pg], pg, used, requested, j->what);
        j->walk_ns += ns_now() - t1;
    }
    return NULL;
}

/* Restores pages [0, pa) on two threads (one when few). The first page refused, or
 * UINT32_MAX; the items go into the shards, the counts into *out. */
static uint32_t restore_pages(const uint8_t *page_cls, const unsigned char *sums, uint32_t pa,
                              const struct restore_ctx *rc, struct walk_job *out,
                              int *why)
{
    uint32_t most = 0;
    for (unsigned i = 0; i < stg.nclasses; i++)
        if (stg.classes[i].perslab > most)
            most = stg.classes[i].perslab;
    struct walk_job jobs[2];
    for (int k = 0; k < 2; k++) {
        jobs[k] = (struct walk_job){.page_cls = page_cls, .sums = sums, .rc = *rc};
        jobs[k].buf = mem_alloc(stg.page_size);
        jobs[k].hv = mem_alloc((size_t)most * sizeof(uint64_t));
        jobs[k].what = mem_alloc(most);
        jobs[k].sh_items = mem_calloc(stg.nshards, sizeof(uint64_t));
        jobs[k].sh_bytes = mem_calloc(stg.nshards, sizeof(uint64_t));
    }
    jobs[0].hi = jobs[1].lo = pa / 2;
    jobs[1].hi = pa;
    pthread_t t;
    bool threaded = pa >= 8 && pthread_create(&t, NULL, walk_run, &jobs[1]) == 0;
    if (!threaded)
        jobs[0].hi = pa;
    walk_run(&jobs[0]);
    if (threaded)
        pthread_join(t, NULL);
    int n = threaded ? 2 : 1;
    uint32_t bad = UINT32_MAX;
    *out = (struct walk_job){0};
    for (int k = 0; k < n; k++) {
        struct walk_job *j = &jobs[k];
        if (j->bad != UINT32_MAX && bad == UINT32_MAX) {
            bad = j->bad;
            *why = j->why;
            errno = j->err;
        }
        out->linked += j->linked;
        out->dropped += j->dropped;
        out->sum_ns += j->sum_ns;
        out->walk_ns += j->walk_ns;
        if (j->max_cas > out->max_cas)
            out->max_cas = j->max_cas;
        for (uint32_t s = 0; s < stg.nshards; s++) {
            struct shard *sh = &stg.shards[s];
            sh->count += j->sh_items[s];
            sh->st.curr_items += j->sh_items[s];
            sh->st.total_items += j->sh_items[s];
            sh->st.bytes += j->sh_bytes[s];
        }
    }
    for (int k = 0; k < 2; k++) {
        mem_free(jobs[k].buf);
        mem_free(jobs[k].hv);
        mem_free(jobs[k].what);
        mem_free(jobs[k].sh_items);
        mem_free(jobs[k].sh_bytes);
    }
    return bad;
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
    struct walk_job res;
    int why = 0;
    uint32_t bad = restore_pages(page_cls, sums, (uint32_t)pa, &rc, &res, &why);
    tables_settle();
    if (bad != UINT32_MAX) {
        if (why == BAD_SUM)
            NOTE("%s: page %u of %zu fails its checksum (corrupt)", pst.path, bad, pa);
        else if (why == BAD_IO)
            NOTE("%s: page %u: %s", pst.path, bad, strerror(errno));
        else
            NOTE("%s: page %u holds an item that does not fit its chunk (corrupt)", pst.path,
                 bad);
        storage_empty();
        return false;
    }
    stg.pages_assigned = (uint32_t)pa;
    uint64_t next = m->cas_next > res.max_cas ? m->cas_next : res.max_cas + 1;
    atomic_store(&stg.cas_next, next ? next : 1);
    /* A delayed flush still pending carries over; one already passed has been applied (its
     * items were dropped above), so it is cleared. */
    if (m->oldest_live > rc.old_now) {
        atomic_store(&stg.oldest_live, shift(m->oldest_live, rc.delta, 1));
        atomic_store(&stg.oldest_cas, m->oldest_cas);
    }
    char dropped[160] = "";
    if (res.dropped)
        snprintf(dropped, sizeof dropped, "; %llu more expired or were flushed before the "
                 "restart and were dropped", (unsigned long long)res.dropped);
    NOTE("restored %llu items from %s in %llu ms (CPU %llu ms, of which read and checksums "
         "%llu ms, items %llu ms)%s",
         (unsigned long long)res.linked, pst.path, (unsigned long long)ms_since(&t0),
         (unsigned long long)(cpu_ms() - cpu0), (unsigned long long)(res.sum_ns / 1000000),
         (unsigned long long)(res.walk_ns / 1000000), dropped);
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
    /* Each page read with pread (through the kernel's mapping), not through ours: pages no
     * request used since a restore are not mapped into the process, and mapping them costs
     * more than the copy (restore_pages). */
    char *page = mem_alloc(stg.page_size);
    int rc = -1;
    int fd = -1;
    for (uint32_t pg = 0; pg < pa; pg++) {
        page_cls[pg] = stg.pmeta[pg].cls;
        if (io_all(false, page, stg.page_size,
                   (off_t)FILE_HEADER_BYTES + (off_t)pg * stg.page_size) < 0) {
            snprintf(errbuf, errlen, "cannot read %s: %s", pst.path, strerror(errno));
            mem_free(page);
            goto out;
        }
        uint64_t s = storage_hash(page, stg.page_size);
        memcpy(sums + (size_t)pg * 8, &s, 8);
    }
    mem_free(page);
    memcpy(buf, &m, sizeof m);
    uint64_t sum = storage_hash(buf, len - 8);
    memcpy(buf + len - 8, &sum, 8);

    /* The arena reaches the file before the description that vouches for it; the
     * description appears whole (rename) or not at all. */
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
