/*
 * Private to storage/: no file outside storage/ includes it.
 * persist: the memory file behind -e (storage/persist.c). Storage-internal: slab.c maps the
 * arena through persist_map and unmaps it through persist_unmap; storage_setup calls
 * persist_restore once the classes and tables exist. The public side (storage_save,
 * storage_persist_note) is in storage.h.
 */
#pragma once

#include <stddef.h>

/* Opens (creating) and locks cfg.memory_file and maps it; returns where the arena starts,
 * or NULL with a reason in errbuf. Nothing of the file is read yet. */
char *persist_map(size_t arena_bytes, char *errbuf, size_t errlen);
void persist_unmap(void);
/* Restores the items FILE.meta describes, or empties the arena (the reason goes to
 * storage_persist_note). FILE.meta is consumed either way. 0, or -1 if FILE cannot be reset. */
int persist_restore(void);
