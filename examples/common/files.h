/* Files the example programs create beside a target: temporary names made
 * exclusively (mkstemp), so that nothing placed there is written through. */
#ifndef DAT_EXAMPLES_FILES_H
#define DAT_EXAMPLES_FILES_H

/* Creates "PREFIX.XXXXXX" (mkstemp); its name in *name (malloc'ed, the
 * caller frees it). Returns the descriptor, or -1 with errno set and *name
 * NULL. */
int temp_create(const char *prefix, char **name);

/* Whether a file can be created as "PREFIX.XXXXXX": creates and removes one.
 * Returns 0, or the errno that stopped it. */
int temp_probe(const char *prefix);

#endif
