/**
 * @file dat_version.h
 * @brief Version of the libdat headers (meson.build checks it against the project version).
 *
 * Compare DAT_VERSION_NUMBER (the headers a program was built against) with
 * dat_version() (the library it runs with) to detect a mismatch at run time.
 */
#ifndef LIBDAT_DAT_VERSION_H
#define LIBDAT_DAT_VERSION_H

/** Major version of the headers: the ABI major (the soname's number). */
#define DAT_VERSION_MAJOR 0
/** Minor version of the headers: new functions and appended fields. */
#define DAT_VERSION_MINOR 7
/** Patch version of the headers: fixes only. */
#define DAT_VERSION_PATCH 0

/** One integer that orders versions: major * 10000 + minor * 100 + patch. */
#define DAT_VERSION_NUMBER \
    (DAT_VERSION_MAJOR * 10000 + DAT_VERSION_MINOR * 100 + DAT_VERSION_PATCH)

/** The version as a string, "major.minor.patch". */
#define DAT_VERSION_STRING "0.7.0"

#endif
